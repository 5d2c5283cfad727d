package tmpl

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/internal/fuzzbudget"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// allocCap is the generous bound on what one attack may allocate.
const allocCap = 64 << 20

// allocated runs f and returns the bytes allocated meanwhile (all
// goroutines: the tests here do not run in parallel).
func allocated(f func()) uint64 { return fuzzbudget.Measure(f).Bytes }

// smallStack lowers the Go stack limit for the test (default 1 GB): a
// template that still recursed with its size would crash the test binary
// with "goroutine stack exceeds" instead of failing cleanly.
func smallStack(t *testing.T) {
	old := debug.SetMaxStack(16 << 20)
	t.Cleanup(func() { debug.SetMaxStack(old) })
}

// wantBudget renders src and checks that it fails with the named budget,
// allocating at most allocCap bytes ("": any error).
func wantBudget(t *testing.T, env *Env, rctx context.Context, src string, ctx *document.Map, budget, msg string) {
	t.Helper()
	var out string
	var err error
	n := allocated(func() { out, err = env.RenderContext(rctx, src, ctx) })
	if err == nil {
		t.Fatalf("render of %q succeeded (%d bytes), want the %s budget exceeded", truncate(src, 80), len(out), budget)
	}
	var terr *Error
	if !errors.As(err, &terr) {
		t.Fatalf("error %v (%T) is not a *tmpl.Error", err, err)
	}
	var berr *BudgetError
	if budget == "" { // any error
	} else if !errors.As(err, &berr) {
		t.Fatalf("error %v has no *BudgetError cause", truncate(err.Error(), 300))
	} else if berr.Budget != budget {
		t.Fatalf("budget %q exceeded (%v), want %q", berr.Budget, berr, budget)
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %q does not contain %q", truncate(err.Error(), 300), msg)
	}
	t.Logf("allocated %.1f MB: %v", float64(n)/(1<<20), truncate(err.Error(), 120))
	if n > allocCap {
		t.Fatalf("render of %q allocated %d MB, want at most %d MB", truncate(src, 80), n>>20, allocCap>>20)
	}
}

func budgetCtx(t *testing.T) *document.Map {
	list := make([]string, 1000)
	for i := range list {
		list[i] = fmt.Sprintf("%d", i)
	}
	ctx := ctxYAML(t, "l: ["+strings.Join(list, ", ")+"]\nm: {a: [1, 2, {b: [3, 4]}], c: x}\n")
	return ctx
}

func TestBudgetAttacks(t *testing.T) {
	smallStack(t)
	env := New(Options{})
	ctx := budgetCtx(t)
	bg := context.Background()
	for _, tc := range []struct{ name, src, budget, msg string }{
		{"ljust", `{{ "x"|ljust:200000000|length }}`, "output", "render budget exceeded (output: 1048576): result of filter 'ljust'"},
		{"rjust", `{{ "x"|rjust:200000000|length }}`, "output", ""},
		{"center", `{{ "x"|center:300000000|length }}`, "output", ""},
		{"ljust in a filter tag", `{% filter ljust:200000000|length %}x{% endfilter %}`, "output", ""},
		{"floatformat", `{{ 1.5|floatformat:200000000|length }}`, "output", ""},
		{"stringformat", `{{ 1|stringformat:"%0200000000d"|length }}`, "output", ""},
		{"stringformat huge", `{{ 1|stringformat:"%.99999999999999999999999f"|length }}`, "output", ""},
		{"json_dumps indent", `{{ m|json_dumps:200000000|length }}`, "output", ""},
		{"json_dumps indent option", `{{ l|json_dumps:"indent=2000"|length }}`, "output", ""},
		{"tojson indent", `{{ m|tojson:200000000|length }}`, "output", ""},
		{"join with a long separator", `{% with s="x"|ljust:500000 %}{{ l|join:s|length }}{% endwith %}`, "output", "filter 'join'"},
		{"doubling concatenation", `{% with x="xxxxxxxx" %}{% for i in l %}{% set x = x + x %}{% endfor %}{{ x|length }}{% endwith %}`, "output", "string concatenation"},
		{"doubling add", `{% with x="xxxxxxxx" %}{% for i in l %}{% set x = x|add:x %}{% endfor %}{{ x|length }}{% endwith %}`, "output", "filter 'add'"},
		{"output", `{% for i in l %}{% for j in l %}{{ "x"|ljust:1000 }}{% endfor %}{% endfor %}`, "output", "render budget exceeded (output: 1048576)"},
		{"macro output", `{% macro m() %}{% for i in l %}{{ "x"|ljust:2000 }}{% endfor %}{% endmacro %}{{ m()|length }}`, "output", "render budget exceeded (output: 1048576)"},
		{"doubly recursive macro f(40)", `{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}`, "depth", "render budget exceeded (depth: 32): macro 'f'"},
		{"doubly recursive macro f(30)", `{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(30) }}`, "steps", "render budget exceeded (steps: 1000000)"},
		{"endless recursion", `{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}`, "depth", ""},
		{"nested loops", `{% for i in l %}{% for j in l %}{% for k in l %}{% endfor %}{% endfor %}{% endfor %}`, "steps", ""},
		{"reading a 1 MiB string", `{% with s="x"|ljust:1048576 %}{% for i in l %}{% for j in l %}{{ s|length }}{% if "y" in s %}{% endif %}{% endfor %}{% endfor %}{% endwith %}`, "steps", ""},
		{"searching a long list", `{% with s=l|join:","|split:"," %}{% for i in l %}{% for j in l %}{% if "y" in s %}{% endif %}{% endfor %}{% endfor %}{% endwith %}`, "steps", ""},
		{"rebuilding 512 KiB strings", `{% for i in l %}{% for j in l %}{{ "x"|ljust:524288|length }}{% endfor %}{% endfor %}`, "steps", ""},
	} {
		t.Run(tc.name, func(t *testing.T) { wantBudget(t, env, bg, tc.src, ctx, tc.budget, tc.msg) })
	}
}

// TestBudgetNesting: 1 MB of nesting fails to compile cleanly (depth),
// under a 16 MB stack limit.
func TestBudgetNesting(t *testing.T) {
	smallStack(t)
	env := New(Options{CacheSize: -1})
	ctx := budgetCtx(t)
	const n = 1 << 20
	rep := func(s string, bytes int) string { return strings.Repeat(s, bytes/len(s)) }
	for _, tc := range []struct{ name, src, msg string }{
		{"parentheses", "{{ " + rep("(", n) + "1" + rep(")", n) + " }}", "expressions nested too deeply"},
		{"open parentheses", "{{ " + rep("(", n), "expressions nested too deeply"},
		{"subscripts", "{{ " + rep("l[", n) + "0" + rep("]", n) + " }}", ""},
		{"brackets", "{{ l" + rep("[", n) + " }}", "any error"}, // no list literals: a syntax error
		{"calls", "{{ " + rep("f(", n) + rep(")", n) + " }}", ""},
		{"filter arguments", "{{ " + rep("l|default:l[", n) + " }}", ""},
		{"and", "{{ 1" + rep(" and 1", n) + " }}", ""},
		{"or", "{{ 1" + rep(" or 1", n) + " }}", ""},
		{"comparisons", "{{ 1" + rep("==1", n) + " }}", ""},
		{"powers", "{{ 1" + rep("^1", n) + " }}", ""},
		{"sums", "{{ 1" + rep("+1", n) + " }}", ""},
		{"products", "{{ 1" + rep("*1", n) + " }}", ""},
		{"if tags", rep("{% if 1 %}", n) + rep("{% endif %}", n), "tags nested too deeply"},
		{"for tags", rep("{% for i in l %}", n), "tags nested too deeply"},
		{"with tags", rep("{% with a=1 %}", n), "tags nested too deeply"},
		{"macro tags", rep("{% macro a() %}", n), "tags nested too deeply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.src) < n/2 {
				t.Fatalf("input is only %d bytes", len(tc.src))
			}
			budget := "depth"
			if tc.msg == "any error" {
				budget, tc.msg = "", ""
			}
			wantBudget(t, env, context.Background(), tc.src, ctx, budget, tc.msg)
		})
	}

	t.Run("long filter chain", func(t *testing.T) {
		wantBudget(t, env, context.Background(), "{{ 'x'"+rep("|upper", n)+" }}", ctx, "depth", "more than 4096 tokens in one tag or variable")
		src := "{{ 'x'" + rep("|upper", 2000) + " }}"
		if out, err := env.Render(src, ctx); err != nil || out != "X" {
			t.Fatalf("Render = %q, %v", out, err)
		}
	})
}

func TestBudgetDeadline(t *testing.T) {
	env := New(Options{})
	ctx := budgetCtx(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	t.Run("cancelled before", func(t *testing.T) {
		wantBudget(t, env, cancelled, "{{ l|length }}", ctx, "deadline", "render budget exceeded (deadline: context canceled)")
	})

	t.Run("cancelled while rendering", func(t *testing.T) {
		rctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ctx := budgetCtx(t)
		ctx.Set("stop", func() string { cancel(); return "" })
		wantBudget(t, env, rctx, `{% for i in l %}{% if i == 10 %}{{ stop() }}{% endif %}{% endfor %}{% for i in l %}{% for j in l %}{% endfor %}{% endfor %}`,
			ctx, "deadline", "")
		var berr *BudgetError
		_, err := env.RenderContext(rctx, "{{ 1 }}", ctx)
		if !errors.As(err, &berr) || !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v does not wrap context.Canceled", err)
		}
	})
}

// TestBudgetJustUnder: a template just under each limit renders, one just
// over fails.
func TestBudgetJustUnder(t *testing.T) {
	smallStack(t)
	ctx := budgetCtx(t)
	env := New(Options{})
	ok := func(t *testing.T, env *Env, src string) string {
		t.Helper()
		out, err := env.Render(src, ctx)
		if err != nil {
			t.Fatalf("Render(%q): %v", truncate(src, 80), err)
		}
		return out
	}
	t.Run("output", func(t *testing.T) {
		if out := ok(t, env, `{{ "x"|ljust:1048576 }}`); len(out) != 1<<20 {
			t.Fatalf("len = %d", len(out))
		}
		ok(t, env, `{{ "x"|center:1048576|length }}{{ m|json_dumps:1000|length }}`)
		wantBudget(t, env, context.Background(), `{{ "x"|ljust:1048577|length }}`, ctx, "output", "")
		wantBudget(t, env, context.Background(), `{{ "x"|ljust:1048576 }}x`, ctx, "output", "")
	})
	t.Run("steps", func(t *testing.T) {
		small := New(Options{MaxSteps: 1000})
		ok(t, small, `{% for i in l|slice:":200" %}{{ i }}{% endfor %}`)
		wantBudget(t, small, context.Background(), `{% for i in l|slice:":300" %}{{ i }}{% endfor %}`, ctx, "steps", "render budget exceeded (steps: 1000)")
		ok(t, New(Options{MaxSteps: -1}), `{% for i in l %}{% for j in l %}{% endfor %}{% endfor %}`)
	})
	t.Run("depth", func(t *testing.T) {
		if out := ok(t, env, "{{ "+strings.Repeat("(", 63)+"1"+strings.Repeat(")", 63)+" }}"); out != "1" {
			t.Fatal(out)
		}
		wantBudget(t, env, context.Background(), "{{ "+strings.Repeat("(", 64)+"1"+strings.Repeat(")", 64)+" }}", ctx, "depth", "render budget exceeded (depth: 64)")
		if out := ok(t, env, strings.Repeat("{% if 1 %}", 64)+"x"+strings.Repeat("{% endif %}", 64)); out != "x" {
			t.Fatal(out)
		}
		wantBudget(t, env, context.Background(), strings.Repeat("{% if 1 %}", 65)+"x"+strings.Repeat("{% endif %}", 65), ctx, "depth", "")
		ok(t, env, "{{ 1"+strings.Repeat("+1", 62)+" }}")
		macro := `{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{% endif %}{% endmacro %}`
		ok(t, env, macro+"{{ f(31) }}")
		wantBudget(t, env, context.Background(), macro+"{{ f(32) }}", ctx, "depth", "")
		deep := New(Options{MaxMacroDepth: 100})
		ok(t, deep, macro+"{{ f(99) }}")
	})
}

// TestBudgetNormalTemplates: the benchmark's template behind the basics
// macros needs far less than the default budget.
func TestBudgetNormalTemplates(t *testing.T) {
	bs := loadBasics(t)
	ctx := withMacros(ctxYAML(t, "channel: stage\nstate: {a: 1, b: {c: [1, 2, 3]}}\nnotify: {message: hello}\n"), bs.macrosAll)
	src := "{{ basicMacro(notify.message) }} {{ channel }} {% for k, v in state %}{{ k }}{% endfor %} {{ state|json_dumps }}\n"
	want, err := New(Options{MaxSteps: -1, MaxOutput: -1}).Render(src, ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := New(Options{MaxSteps: 100}).Render(src, ctx)
	if err != nil || got != want {
		t.Fatalf("with 100 steps: %q, %v; want %q", got, err, want)
	}
}

// TestBudgetDeepestRender: the deepest render the limits allow (32 nested
// macro calls, each inside 63 nested tags and 62 nested parentheses) runs
// on a 16 MB stack.
func TestBudgetDeepestRender(t *testing.T) {
	smallStack(t)
	body := strings.Repeat("{% if 1 %}", 62) + "{% if n > 0 %}{{ " + strings.Repeat("(", 61) + "f(n-1)" + strings.Repeat(")", 61) + " }}{% else %}x{% endif %}" + strings.Repeat("{% endif %}", 62)
	src := "{% macro f(n) %}" + body + "{% endmacro %}{{ f(31) }}"
	out, err := New(Options{}).Render(src, nil)
	if err != nil || out != "x" {
		t.Fatalf("Render = %q, %v", out, err)
	}
}
