package tmpl

import (
	"errors"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/internal/fuzzbudget"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// renderSeeds are the seeds of FuzzRender: ordinary templates and every
// render attack of issue 11 and its variants (docs/templates.md "Budgets"):
// template source, a string value, and YAML for a state value.
var renderSeeds = []struct{ src, val, state string }{
	{"{{ state.x }}", "v", ""},
	{"{% for k, v in state %}{{k}}={{v}}{% endfor %}", "x", "{a: 1, b: [x]}"},
	{"{{ state.missing.x }}", "", ""},
	{"{{ val|from_json|json_dumps:2 }}", `{"a": [1, 2.5, null, "é"]}`, ""},
	{"{{ val|kv_comma_pairs_to_json }}", "a=1,b=c=d,,=", ""},
	{"{% with r=val|from_json %}{{ r.a.0 }}{% for p in r|items %}{{p.0}}{% endfor %}{% endwith %}", `{"a": [1]}`, ""},
	{"{{ val|to_nice_yaml:4 }}{{ state|tojson }}{{ val|to_base64 }}", "x", "{a: {b: c}}"},
	{"{% macro f(a) %}{{ f(a) }}{% endmacro %}{{ f(1) }}", "", ""},
	{"{% for c in val sorted %}{{c}}{% endfor %}", "abc", ""},
	{"{% ssi \"/etc/passwd\" %}{% include val %}", "/etc/passwd", ""},
	{"{{ hello(val) }}{% if %}", "x", ""},
	{"{{'{{'}}{{ state[val] }}{{ state.list[val] }}{{ state.list.9.x }}", "list", ""},
	{"{{ 1.5 * 3 }}{{ 10 / 0 }}{{ val|floatformat:val }}{{ val|stringformat:val }}", "%v", ""},
	{"{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(val|integer) }}", "25", ""},
	{"{{ val|ljust:200000000 }}{{ val|center:val }}{{ state|json_dumps:val }}{{ state.list|join:val }}", "100000000", ""},
	{"{% for a in state.list %}{% set val = val + val %}{% endfor %}{{ ((((val)))) }}", "xx", ""},
	// issue 11: size arguments
	{`{{ "x"|ljust:200000000|length }}`, "", ""},
	{`{{ "x"|center:300000000|length }}`, "", ""},
	{`{{ "x"|rjust:200000000|length }}`, "", ""},
	{`{% filter ljust:200000000|length %}x{% endfilter %}`, "", ""},
	{`{{ 1.5|floatformat:200000000|length }}`, "", ""},
	{`{{ 1|stringformat:"%0200000000d"|length }}`, "", ""},
	{`{{ 1|stringformat:"%.99999999999999999999999f"|length }}`, "", ""},
	{`{{ state.y|json_dumps:200000000|length }}{{ state.y|tojson:200000000|length }}`, "", "[[[[[[[[[[[1]]]]]]]]]]]"},
	{`{{ state.y|json_dumps:"indent=2000"|length }}`, "", "[" + strings.Repeat("1, ", 3000) + "1]"},
	{`{{ val|wordwrap:1|length }}{{ val|wordwrap:200000000|length }}{{ "a b c d e"|wordwrap:3 }}`, strings.Repeat("a ", 5000), ""},
	{`{{ "x" * 200000000 }}{{ val * val }}`, "200000000", ""},
	{`{% with s="x"|ljust:500000 %}{{ state.y|join:s|length }}{% endwith %}`, "", "[" + strings.Repeat("1, ", 999) + "1]"},
	{`{% with x="xxxxxxxx" %}{% for i in state.y %}{% set x = x + x %}{% endfor %}{{ x|length }}{% endwith %}`, "", "[" + strings.Repeat("1, ", 99) + "1]"},
	{`{% with x="xxxxxxxx" %}{% for i in state.y %}{% set x = x|add:x %}{% endfor %}{{ x|length }}{% endwith %}`, "", "[" + strings.Repeat("1, ", 99) + "1]"},
	// issue 11: recursion and steps
	{`{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}`, "", ""},
	{`{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}`, "", ""},
	{`{% macro a(n) %}{{ b(n) }}{% endmacro %}{% macro b(n) %}{{ a(n) }}{{ a(n) }}{% endmacro %}{{ a(1) }}`, "", ""},
	{`{% for i in state.y %}{% for j in state.y %}{% for k in state.y %}{% endfor %}{% endfor %}{% endfor %}`, "", "[" + strings.Repeat("1, ", 999) + "1]"},
	{`{% with s="x"|ljust:1048576 %}{% for i in state.y %}{% for j in state.y %}{{ s|upper|length }}{% endfor %}{% endfor %}{% endwith %}`, "", "[" + strings.Repeat("1, ", 999) + "1]"},
	{`{% for i in state.y %}{% for j in state.y %}{{ "x"|ljust:524288|length }}{% endfor %}{% endfor %}`, "", "[" + strings.Repeat("1, ", 999) + "1]"},
	// filters that build lists and maps, in a loop (each call a step per
	// value built: third_party/pongo2 filterBuilt)
	{`{% with s="x"|ljust:1048576 %}{% for i in state.y %}{{ s|make_list|length }}{% endfor %}{% endwith %}`, "", "[" + strings.Repeat("1, ", 999) + "1]"},
	{`{% with s="x "|ljust:1048576 %}{% for i in state.y %}{{ s|split:" "|length }}{% endfor %}{% endwith %}`, "", "[" + strings.Repeat("1, ", 999) + "1]"},
	{`{% with b="1"|rjust:200000|make_list|join:"1," %}{% with s="["+b+"]" %}{% for i in state.y %}{{ s|from_json|length }}{% endfor %}{% endwith %}{% endwith %}`, "", "[" + strings.Repeat("1, ", 999) + "1]"},
	// issue 11: nesting (the 3 MB nested expression a set-values handler
	// built, in small)
	{"{{ " + strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000) + " }}", "", ""},
	{"{{ " + strings.Repeat("state[", 20000) + "val" + strings.Repeat("]", 20000) + " }}", "", ""},
	{"{{ " + strings.Repeat("f(", 20000) + strings.Repeat(")", 20000) + " }}", "", ""},
	{"{{ 1" + strings.Repeat("+1", 50000) + " }}{{ 1" + strings.Repeat(" and 1", 10000) + " }}", "", ""},
	{"{{ 'x'" + strings.Repeat("|upper", 5000) + " }}", "", ""},
	{strings.Repeat("{% if 1 %}", 20000) + strings.Repeat("{% endif %}", 20000), "", ""},
	{strings.Repeat("{% for i in state.y %}", 20000), "", "[1]"},
	{strings.Repeat("{% macro a() %}", 20000), "", ""},
	{"{{ state.y|json_dumps:8 }}{{ state.y|to_nice_yaml }}{{ state.y|tojson }}", "", strings.Repeat("[", 900) + strings.Repeat("]", 900)},
	{"{{ state.y|json_dumps:8 }}", "", strings.Repeat("{a: ", 900) + "1" + strings.Repeat("}", 900)},
}

// FuzzRender renders any template source over a state with a fuzzed string
// value (state.val and val) and a fuzzed YAML value (state.y), under the
// production render budget (the defaults of config-cicdstatemgr): no input
// makes Render panic or crash; failures are *Error values naming the
// source, a budget failure names a known budget; and every render stays
// within its resource budget (internal/fuzzbudget): it ends within the time
// bound and allocates at most PerByte × (input + output budget + step
// budget) + Base bytes, a step being charged like a byte (1M steps of the
// worst seeds allocate about 48 MB, under 64 B a step).
func FuzzRender(f *testing.F) {
	for _, seed := range renderSeeds {
		f.Add(seed.src, seed.val, seed.state)
	}
	env := New(Options{CacheSize: 64})
	macros := "{%- macro hello(msg) -%}\n  Hello {{msg}}\n{%- endmacro -%}"
	f.Fuzz(func(t *testing.T, src, val, stateYAML string) {
		state := ctxYAML(t, "z: 1\na: {b: [1, 2.5, null]}\nlist: [x, y]\nnothing: null\n")
		state.Set("val", val)
		if y, err := document.ParseYAML([]byte(stateYAML)); err == nil {
			state.Set("y", y)
		}
		ctx := document.NewMap()
		ctx.Set("state", state)
		ctx.Set("val", val)
		withMacros(ctx, macros)
		var err error
		lim := fuzzbudget.For(fuzzbudget.Size(src, val, stateYAML), DefaultMaxOutput+DefaultMaxSteps)
		fuzzbudget.Check(t, lim, func() { _, err = env.Render(src, ctx) }, src, val, stateYAML)
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
