package tmpl

import (
	"errors"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// FuzzRender: no template source or context string makes Render panic or
// crash; failures are *Error values naming the source; every render stays
// within its budget: it ends (at the latest with a *BudgetError, a normal
// error) and allocates at most allocCap bytes.
func FuzzRender(f *testing.F) {
	for _, seed := range []struct{ src, val string }{
		{"{{ state.x }}", "v"},
		{"{% for k, v in state %}{{k}}={{v}}{% endfor %}", "x"},
		{"{{ state.missing.x }}", ""},
		{"{{ val|from_json|json_dumps:2 }}", `{"a": [1, 2.5, null, "é"]}`},
		{"{{ val|kv_comma_pairs_to_json }}", "a=1,b=c=d,,="},
		{"{% with r=val|from_json %}{{ r.a.0 }}{% for p in r|items %}{{p.0}}{% endfor %}{% endwith %}", `{"a": [1]}`},
		{"{{ val|to_nice_yaml:4 }}{{ state|tojson }}{{ val|to_base64 }}", "x"},
		{"{% macro f(a) %}{{ f(a) }}{% endmacro %}{{ f(1) }}", ""},
		{"{% for c in val sorted %}{{c}}{% endfor %}", "abc"},
		{"{% ssi \"/etc/passwd\" %}{% include val %}", "/etc/passwd"},
		{"{{ hello(val) }}{% if %}", "x"},
		{"{{'{{'}}{{ state[val] }}{{ state.list[val] }}{{ state.list.9.x }}", "list"},
		{"{{ 1.5 * 3 }}{{ 10 / 0 }}{{ val|floatformat:val }}{{ val|stringformat:val }}", "%v"},
		{"{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(val|integer) }}", "25"},
		{"{{ val|ljust:200000000 }}{{ val|center:val }}{{ state|json_dumps:val }}{{ state.list|join:val }}", "100000000"},
		{"{% for a in state.list %}{% set val = val + val %}{% endfor %}{{ ((((val)))) }}", "xx"},
	} {
		f.Add(seed.src, seed.val)
	}
	env := New(Options{CacheSize: 64})
	macros := "{%- macro hello(msg) -%}\n  Hello {{msg}}\n{%- endmacro -%}"
	f.Fuzz(func(t *testing.T, src, val string) {
		state := ctxYAML(t, "z: 1\na: {b: [1, 2.5, null]}\nlist: [x, y]\nnothing: null\n")
		state.Set("val", val)
		ctx := document.NewMap()
		ctx.Set("state", state)
		ctx.Set("val", val)
		withMacros(ctx, macros)
		var err error
		if n := allocated(func() { _, err = env.Render(src, ctx) }); n > allocCap {
			t.Fatalf("render allocated %d MB, want at most %d MB", n>>20, allocCap>>20)
		}
		var berr *BudgetError
		if errors.As(err, &berr) {
			switch berr.Budget {
			case "steps", "output", "depth":
			default:
				t.Fatalf("unknown budget %q exceeded: %v", berr.Budget, err)
			}
		}
		if err != nil {
			var terr *Error
			if !errors.As(err, &terr) {
				t.Fatalf("error %v is a %T, not a *tmpl.Error", err, err)
			}
			if terr.Template != src {
				t.Fatalf("Error.Template = %q, want %q", terr.Template, src)
			}
			_ = err.Error()
		}
	})
}

func benchmarkRender(b *testing.B, opts Options) {
	bs := loadBasics(b)
	env := New(opts)
	ctx := withMacros(ctxYAML(b, "channel: stage\nstate: {a: 1, b: {c: [1, 2, 3]}}\nnotify: {message: hello}\n"), bs.macrosAll)
	src := "{{ basicMacro(notify.message) }} {{ channel }} {% for k, v in state %}{{ k }}{% endfor %} {{ state|json_dumps }}\n"
	if _, err := env.Render(src, ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := env.Render(src, ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderCached renders a small template behind the basics macro
// prefix from the compiled-template cache.
func BenchmarkRenderCached(b *testing.B) { benchmarkRender(b, Options{}) }

// BenchmarkRenderUncached compiles macros + template on every render.
func BenchmarkRenderUncached(b *testing.B) { benchmarkRender(b, Options{CacheSize: -1}) }
