package tmpl

import (
	"fmt"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// bigContext builds a template context of about 100 KB (as compact JSON):
// state.apps holds 340 apps, each a map with scalars, a list, a nested map
// and a list of maps, plus a few top-level keys.
func bigContext() *document.Map {
	apps := document.NewMap()
	for i := 0; i < 340; i++ {
		app := document.NewMap()
		app.Set("name", fmt.Sprintf("application-%03d", i))
		app.Set("version", fmt.Sprintf("1.%d.%d", i%7, i))
		app.Set("enabled", i%3 != 0)
		app.Set("replicas", i%5+1)
		app.Set("tags", []any{"team-" + fmt.Sprint(i%9), "tier-" + fmt.Sprint(i%3), "release"})
		meta := document.NewMap()
		meta.Set("owner", fmt.Sprintf("owner%02d@example.com", i%40))
		meta.Set("repo", fmt.Sprintf("https://git.example.com/org/application-%03d.git", i))
		meta.Set("score", float64(i)/4)
		app.Set("meta", meta)
		var builds []any
		for j := 0; j < 2; j++ {
			b := document.NewMap()
			b.Set("id", fmt.Sprintf("%03d-%d", i, j))
			b.Set("status", "ok")
			builds = append(builds, b)
		}
		app.Set("builds", builds)
		apps.Set(fmt.Sprintf("app%03d", 339-i), app) // keys not in sorted order
	}
	state := document.NewMap()
	state.Set("gitTag", "1.0-alpine")
	state.Set("apps", apps)
	ctx := document.NewMap()
	ctx.Set("channel", "stage")
	ctx.Set("state", state)
	return ctx
}

const bench100KBTemplate = `{% for k, v in state.apps %}{% if v.enabled %}{{ k }}={{ v.version }}/{{ v.tags.0 }};{% endif %}{% endfor %}
{{ state.apps.app042.meta.owner }} {{ state.apps.app199.builds.1.id }} {{ channel }} {{ state.apps|length }} {{ state.gitTag }}
{% if 'app007' in state.apps %}{{ state.apps.app007.meta|json_dumps }}{% endif %}`

// BenchmarkRender100KB renders a template that walks a map of 340 entries
// and reads a few paths, over a ~100 KB context (from the cache). Medians on
// a busy 2-core machine (third_party/pongo2/PATCHES.md has the table): with a
// deep copy of the context per render 8.1 ms, 1,008,855 B and 10,214 allocs
// per op; reading the document in place (pongo2.OrderedMap) 0.76 ms, 82,562 B
// and 2,077 allocs per op.
func BenchmarkRender100KB(b *testing.B) {
	ctx := bigContext()
	if n := len(document.MustJSON(ctx, document.JSONStyle{})); n < 90_000 || n > 130_000 {
		b.Fatalf("context is %d bytes of JSON, want about 100 KB", n)
	}
	env := New(Options{})
	want, err := env.Render(bench100KBTemplate, ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := env.Render(bench100KBTemplate, ctx)
		if err != nil {
			b.Fatal(err)
		}
		if got != want {
			b.Fatalf("render %d differs from the first", i)
		}
	}
}
