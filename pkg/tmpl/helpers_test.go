package tmpl

import (
	"errors"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// ctxYAML builds a template context from YAML text (key order kept).
func ctxYAML(t testing.TB, text string) *document.Map {
	t.Helper()
	m, err := document.ParseYAMLMap([]byte(text))
	if err != nil {
		t.Fatalf("bad test context: %v", err)
	}
	return m
}

// withMacros returns ctx with jinja2Macros.all set to all.
func withMacros(ctx *document.Map, all string) *document.Map {
	macros := document.NewMap()
	macros.Set("all", all)
	ctx.Set(MacrosKey, macros)
	return ctx
}

// renderCase is one row of a render table: want is the exact output, or
// wantErr a substring of the error (the render must then fail).
type renderCase struct {
	name    string
	src     string
	want    string
	wantErr string
}

func runRenderCases(t *testing.T, env *Env, ctx *document.Map, cases []renderCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := env.Render(tc.src, ctx)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Render(%q) = %q, want an error containing %q", tc.src, got, tc.wantErr)
				}
				var terr *Error
				if !errors.As(err, &terr) {
					t.Fatalf("error %v (%T) is not a *tmpl.Error", err, err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Render(%q) error = %q, want it to contain %q", tc.src, err, tc.wantErr)
				}
				if got != "" {
					t.Errorf("failed render returned output %q", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render(%q) failed: %v", tc.src, err)
			}
			if got != tc.want {
				t.Fatalf("Render(%q)\n got %q\nwant %q", tc.src, got, tc.want)
			}
		})
	}
}
