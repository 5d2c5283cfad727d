package tmpl

import (
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

func TestMissingAttributeOfAScalarIsUndefined(t *testing.T) {
	env := New(Options{})
	ctx := document.NewMap()
	ctx.Set("body", "ok")
	ctx.Set("n", 3)
	cases := []struct{ src, want, err string }{
		{"{% if body.data %}yes{% else %}no{% endif %}", "no", ""},
		{"[{{ body.data }}]", "[]", ""},
		{"[{{ n.x }}]", "[]", ""},
		{"{{ body.data.x }}", "", "no attribute"},
	}
	for _, c := range cases {
		got, err := env.Render(c.src, ctx)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.src, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s = %q, %v; want %q", c.src, got, err, c.want)
		}
	}
}
