package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// wholeOnly hides the partial reads and writes of the store, so the engine
// takes its whole-document paths.
type wholeOnly struct{ engine.Store }

// TestPartialPathsGiveSameOutputs: set and get through the partial store API
// give exactly what they give on whole documents.
func TestPartialPathsGiveSameOutputs(t *testing.T) {
	const macrosWithOutput = `
jinja2-macros:
  m: "{% macro m() %}M{% endmacro %}{{ state.key1 }}/"
cicd-contexts:
  stage: {channel: c}
`
	const macrosOnly = `
jinja2-macros:
  m: "{# note #}{%- macro m(x) -%}{% raw %}{% endmacro %}{{ y }}{% endraw %}{{ x }}{%- endmacro %}"
cicd-contexts:
  stage: {channel: c}
`
	for name, app := range map[string]string{"app": appYAML, "macros with output": macrosWithOutput, "macros only": macrosOnly} {
		t.Run(name, func(t *testing.T) {
			fast, cfg := newEngine(t)
			whole := &engine.Engine{Store: wholeOnly{fast.Store}, Templates: fast.Templates}
			ctx := context.Background()
			sets := []document.Assignment{
				{Path: "state.key1", Value: "value1"},
				{Path: "state.tpl", Value: "{{ state.key1 }}|{{ configData.dashboard.url }}"},
				{Path: "state.cmt", Value: "a{# c #}b"},
				{Path: "state.lead", Value: "   spaced\n"},
				{Path: "state.num", Value: 3},
				{Path: "state.list", Value: []any{"a", "{{ x }}", 2}},
				{Path: "state.l[]", Value: "x,y"},
				{Path: "state.nested.a.b", Value: "deep"},
				{Path: "state.nested.a.c", Value: "{{ state.nested.a.b }}!"},
				{Path: "top.x", Value: "t"},
				{Path: "state.big", Value: document.NewMap()},
			}
			for _, id := range []string{"fast", "whole"} {
				if _, err := fast.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpInit, ID: id, Config: cfg, AppConfig: []byte(app), Bases: bases}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range sets {
				for _, c := range []struct {
					e  *engine.Engine
					id string
				}{{fast, "fast"}, {whole, "whole"}} {
					out, err := c.e.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpSet, ID: c.id, Config: cfg, Sets: sets[i : i+1], OpKey: fmt.Sprint(c.id, i)})
					if err != nil {
						t.Fatal(err)
					}
					if (c.e == fast) != (out.Doc == nil) {
						t.Fatalf("%s: Doc = %v", c.id, out.Doc)
					}
				}
			}
			bad := []document.Assignment{{Path: "state.key1[]", Value: "x"}}
			_, err1 := fast.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpSet, ID: "fast", Config: cfg, Sets: bad})
			_, err2 := whole.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpSet, ID: "whole", Config: cfg, Sets: bad})
			if fmt.Sprint(err1) != fmt.Sprint(err2) || err1 == nil {
				t.Fatalf("bad set: %v / %v", err1, err2)
			}
			raw := func(e *engine.Engine, id string) string {
				out, err := e.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpGet, ID: id, Config: cfg, Gets: []engine.GetSpec{{Name: "v", Expr: "$"}}})
				if err != nil {
					t.Fatal(err)
				}
				v, _ := out.Result("v")
				return v
			}
			a, b := raw(fast, "fast"), raw(whole, "whole")
			if strings.ReplaceAll(a, `"fast"`, `"whole"`) != b {
				t.Fatalf("documents differ:\n%s\n%s", a, b)
			}
			exprs := []string{"state.key1", "state.tpl", "state.cmt", "state.lead", "state.num", "state.list", "state.l",
				"state.nested.a.b", "state.nested.a.c", "state.nested", "state.missing", "top.x", "top", "channel",
				" state.key1 ", "state", "$.state.key1", "state.list[0]", "state[", "state..x", "state.key1.x", "nope.x"}
			for _, expr := range exprs {
				for _, vars := range [][]string{nil, {"t.p=state.key1"}} {
					pv, _ := tmpl.ParseVars(vars)
					for _, format := range []string{"", "csv"} {
						req := engine.Request{Namespace: "ns", Op: engine.OpGet, ID: "fast", Config: cfg, Vars: pv,
							Gets: []engine.GetSpec{{Name: "v", Expr: expr, Format: format}, {Name: "k", Expr: "state.key1"}}}
						o1, err1 := fast.Do(ctx, req)
						o2, err2 := whole.Do(ctx, req)
						if fmt.Sprint(err1) != fmt.Sprint(err2) {
							t.Fatalf("get %q %v %s: err %v, whole %v", expr, vars, format, err1, err2)
						}
						if err1 != nil {
							continue
						}
						if fmt.Sprint(o1.Results) != fmt.Sprint(o2.Results) {
							t.Fatalf("get %q %v %s = %q, whole %q", expr, vars, format, o1.Results, o2.Results)
						}
					}
				}
			}
			// A missing context is ErrNotFound both ways.
			for _, e := range []*engine.Engine{fast, whole} {
				_, err := e.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpGet, ID: "nope", Config: cfg, Gets: []engine.GetSpec{{Name: "v", Expr: "state.a"}}})
				if engine.ReasonOf(err, "") != engine.ReasonContextNotFound {
					t.Fatalf("missing context: %v", err)
				}
			}
		})
	}
}

// TestSetWithLocalFilesReturnsDocument: when the configuration names local
// files, a set returns the whole document (the CLI writes it out).
func TestSetWithLocalFilesReturnsDocument(t *testing.T) {
	e, _ := newEngine(t)
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1}\n    jsonfile: {path: ctx.json}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	initDoc(t, e, cfg, "lf")
	out, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpSet, ID: "lf", Config: cfg, Sets: []document.Assignment{{Path: "state.k", Value: "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := document.Lookup(out.Doc, "state.k"); v != "v" || !out.Doc.Has("pipelines") {
		t.Fatalf("Doc = %v", out.Doc)
	}
}

// counting counts whole-document reads of a store.
type counting struct {
	*store.Store
	gets int
}

func (c *counting) Get(ctx context.Context, id string) (*document.Map, error) {
	c.gets++
	return c.Store.Get(ctx, id)
}

// TestGetReadsWholeDocumentOnlyWhenNeeded: plain values are read with
// GetPaths; templates, tmpl-ctx-vars and macros that print need it all.
func TestGetReadsWholeDocumentOnlyWhenNeeded(t *testing.T) {
	e, cfg := newEngine(t)
	initDoc(t, e, cfg, "w", document.Assignment{Path: "state.key1", Value: "value1"},
		document.Assignment{Path: "state.tpl", Value: "{{ state.key1 }}"}, document.Assignment{Path: "state.n", Value: 1})
	cs := &counting{Store: e.Store.(*store.Store)}
	e.Store = cs
	for _, c := range []struct {
		expr  string
		vars  []string
		whole bool
	}{
		{"state.key1", nil, false},
		{"state.n", nil, false},
		{"state.missing", nil, false},
		{"variables.v1", nil, false},
		{"state.tpl", nil, true},
		{"state.key1", []string{"a=b"}, true},
		{"$..key1", nil, true},
	} {
		cs.gets = 0
		if _, err := get(t, e, cfg, "w", c.expr, c.vars...); err != nil {
			t.Fatal(err)
		}
		if (cs.gets > 0) != c.whole {
			t.Errorf("get %s %v: %d whole reads", c.expr, c.vars, cs.gets)
		}
	}
}
