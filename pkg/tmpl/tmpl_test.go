package tmpl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/flosch/pongo2/v6"
)

const stateYAML = `
channel: stage
state:
  gitTag: 1.0-alpine
  order: {z: 1, a: 2, m: 3}
  nested: {outer2: {z: 1, a: 2}, outer1: {y: 1, b: 2}}
  list: [a, b, c]
  nothing: null
  float1: 1.5
  float2: 2.0
  float3: 0.0000001
  postedData:
    "12345": {headers: {userAgent: curl/8}}
  lastId: "12345"
  flag: true
`

func TestMacroPrefixAndWhitespace(t *testing.T) {
	env := New(Options{})
	macros := "{%- macro hello(msg) -%}\n  Hello {{msg}}\n{%- endmacro -%}" +
		"{%- macro twice(a, b='B') -%}\n{{a}}{{a}}{{b}}\n{%- endmacro -%}"
	with := withMacros(ctxYAML(t, stateYAML), macros)
	without := ctxYAML(t, stateYAML)

	t.Run("with macros", func(t *testing.T) {
		runRenderCases(t, env, with, []renderCase{
			{name: "macro callable", src: "{{ hello('x') }}", want: "Hello x"},
			{name: "macro default argument", src: "{{ twice('a') }}|{{ twice('a', 'c') }}", want: "aaB|aac"},
			{name: "macro with context value", src: "{{ hello(channel) }}", want: "Hello stage"},
			// the trailing -%} of the macros eats the leading whitespace
			{name: "leading whitespace eaten", src: "  \n\t  text {{ channel }}", want: "text stage"},
			{name: "whitespace-only becomes empty", src: "  \n  \n", want: ""},
			{name: "one trailing newline dropped", src: "text\n\n", want: "text\n"},
			{name: "CRLF trailing newline dropped", src: "text\r\n", want: "text"},
			{name: "literal braces", src: "{{'{{'}} state.x {{'}}'}}", want: "{{ state.x }}"},
			{name: "templatetag braces", src: "{% templatetag openvariable %} x {% templatetag closevariable %}", want: "{{ x }}"},
			{name: "macros not printed", src: "", want: ""},
		})
	})
	t.Run("without macros", func(t *testing.T) {
		runRenderCases(t, env, without, []renderCase{
			{name: "leading whitespace kept", src: "  \n\t  text {{ channel }}", want: "  \n\t  text stage"},
			{name: "one trailing newline dropped", src: "text\n\n", want: "text\n"},
			{name: "only one newline", src: "\n", want: ""},
			{name: "macro not defined", src: "{{ hello('x') }}", wantErr: "'hello' is undefined"},
			{name: "autoescape off", src: "{{ '<b>&\"' }}", want: "<b>&\""},
		})
	})
	t.Run("macros whose all is not a string are ignored", func(t *testing.T) {
		ctx := ctxYAML(t, "jinja2Macros: {all: 42}\nx: 1")
		runRenderCases(t, env, ctx, []renderCase{{name: "plain", src: " {{ x }}", want: " 1"}})
	})
	t.Run("nil context", func(t *testing.T) {
		got, err := env.Render("a{{ x }}b\n", nil)
		if err != nil || got != "ab" {
			t.Fatalf("Render with nil ctx = %q, %v", got, err)
		}
	})
}

func TestUndefinedRules(t *testing.T) {
	env := New(Options{})
	ctx := ctxYAML(t, stateYAML)
	runRenderCases(t, env, ctx, []renderCase{
		{name: "missing top-level attribute", src: "{{ tmplctx.prop1 }}", wantErr: "'tmplctx' is undefined"},
		{name: "missing middle part", src: "{{ state.missing.x }}", wantErr: "'state.missing' is undefined"},
		{name: "missing middle part deep", src: "{{ state.order.missing.x.y }}", wantErr: "'state.order.missing' is undefined"},
		{name: "missing middle part in if", src: "{% if state.missing.x %}y{% endif %}", wantErr: "'state.missing' is undefined"},
		{name: "missing last part", src: "[{{ state.missing }}]", want: "[]"},
		{name: "missing top-level", src: "[{{ missing }}]", want: "[]"},
		{name: "missing last part is false", src: "{% if state.missing %}yes{% else %}no{% endif %}", want: "no"},
		{name: "not missing", src: "{% if not state.missing %}no{% endif %}", want: "no"},
		{name: "and short-circuits", src: "{% if state.missing and state.missing.x %}y{% else %}n{% endif %}", want: "n"},
		{name: "default filter", src: "{{ state.missing|default:'d' }}", want: "d"},
		{name: "null value prints empty", src: "[{{ state.nothing }}]", want: "[]"},
		{name: "attribute of null", src: "{{ state.nothing.x }}", wantErr: "'state.nothing' is null"},
		{name: "list index in range", src: "{{ state.list.1 }}", want: "b"},
		{name: "list index out of range last", src: "[{{ state.list.9 }}]", want: "[]"},
		{name: "list index out of range middle", src: "{{ state.list.9.x }}", wantErr: "'state.list.9' is undefined"},
		{name: "subscript must be last (pongo2)", src: "{{ state.postedData[state.lastId].headers.userAgent }}", wantErr: "'}}' expected"},
		{name: "subscript missing last", src: "[{{ state.postedData['nope'] }}]", want: "[]"},
		{name: "subscript with", src: "{% with p=state.postedData[state.lastId] %}{{ p.headers.userAgent }}{% endwith %}", want: "curl/8"},
		{name: "subscript missing then attribute", src: "{% with p=state.postedData['nope'] %}{{ p.headers }}{% endwith %}", wantErr: "'p' is null"},
		{name: "undefined function", src: "{{ range(1, 5) }}", wantErr: "'range' is undefined"},
		{name: "undefined method", src: "{{ state.nope() }}", wantErr: "'state.nope' is undefined"},
		{name: "no .items()", src: "{% for k, v in state.order.items() %}{{k}}{% endfor %}", wantErr: "'state.order.items' is undefined"},
		{name: "macro default not evaluated when passed", src: "{% macro s(uid=event.data.x) %}[{{uid}}]{% endmacro %}{{ s('given') }}", want: "[given]"},
		{name: "macro default evaluated when missing", src: "{% macro s(uid=event.data.x) %}[{{uid}}]{% endmacro %}{{ s() }}", wantErr: "'event' is undefined"},
		{name: "macro default from context", src: "{% macro s(t=state.gitTag) %}[{{t}}]{% endmacro %}{{ s() }}", want: "[1.0-alpine]"},
		{name: "missing macro argument is undefined", src: "{% macro s(a) %}[{{a}}]{{ a.x }}{% endmacro %}{{ s() }}", wantErr: "'a' is null"},
		{name: "string in", src: "{% if 'alpine' in state.gitTag %}A{% endif %}", want: "A"},
		{name: "in missing", src: "{% if 'alpine' in state.missing %}A{% else %}B{% endif %}", want: "B"},
		{name: "bool prints Python style", src: "{{ state.flag }}", want: "True"},
	})
}

func TestFloats(t *testing.T) {
	env := New(Options{})
	ctx := ctxYAML(t, stateYAML)
	runRenderCases(t, env, ctx, []renderCase{
		{name: "1.5", src: "{{ state.float1 }}", want: "1.5"},
		{name: "2.0 prints as JSON", src: "{{ state.float2 }}", want: "2"},
		{name: "tiny", src: "{{ state.float3 }}", want: "1e-07"},
		{name: "literal", src: "{{ 0.25 }}", want: "0.25"},
		{name: "arithmetic", src: "{{ state.float1 * 3 }}", want: "4.5"},
	})
	// inside a printed map or list: Python's repr (2.0 stays 2.0)
	ctx2 := ctxYAML(t, "m: {f: 2.0, g: 1.5, s: \"it's\", l: [1, null, true, \"x\\n\"]}")
	runRenderCases(t, env, ctx2, []renderCase{
		{name: "map repr", src: "{{ m }}", want: `{'f': 2.0, 'g': 1.5, 's': "it's", 'l': [1, None, True, 'x\n']}`},
		{name: "list repr", src: "{{ m.l }}", want: `[1, None, True, 'x\n']`},
	})
}

func TestOrderedIteration(t *testing.T) {
	env := New(Options{})
	ctx := ctxYAML(t, stateYAML)
	runRenderCases(t, env, ctx, []renderCase{
		{name: "document order", src: "{% for k, v in state.order %}{{k}}{{v}} {% endfor %}", want: "z1 a2 m3 "},
		{name: "keys only", src: "{% for k in state.order %}{{k}}{% endfor %}", want: "zam"},
		{name: "sorted", src: "{% for k, v in state.order sorted %}{{k}}{% endfor %}", want: "amz"},
		{name: "reversed", src: "{% for k in state.order reversed %}{{k}}{% endfor %}", want: "maz"},
		{name: "reversed sorted", src: "{% for k in state.order reversed sorted %}{{k}}{% endfor %}", want: "zma"},
		{name: "nested", src: "{% for k, v in state.nested %}{{k}}:{% for k2 in v %}{{k2}}{% endfor %};{% endfor %}", want: "outer2:za;outer1:yb;"},
		{name: "items", src: "{% for p in state.order|items %}{{ p.0 }}={{ p.1 }},{% endfor %}", want: "z=1,a=2,m=3,"},
		{name: "items of nested value", src: "{% for p in state.nested|items %}{{ p.0 }}={{ p.1.z }}{{ p.1.y }},{% endfor %}", want: "outer2=1,outer1=1,"},
		{name: "forloop.Last", src: "{% for k in state.order %}{{k}}{% if not forloop.Last %},{% endif %}{% endfor %}", want: "z,a,m"},
		{name: "top-level order", src: "{% for k in state %}{{k}} {% endfor %}", want: "gitTag order nested list nothing float1 float2 float3 postedData lastId flag "},
		{name: "from_json order", src: `{% with r='{"z": 1, "a": {"y": 1, "b": 2}}'|from_json %}{% for k in r %}{{k}}{% endfor %}{% for k in r.a %}{{k}}{% endfor %}{% endwith %}`, want: "zayb"},
		{name: "length", src: "{{ state.order|length }}", want: "3"},
	})
}

func TestUnregisteredMapsIterateSorted(t *testing.T) {
	if pongo2.FormatValue == nil {
		t.Fatal("the pongo2.FormatValue hook is not installed")
	}
	// a caller's plain map[string]any inside the document iterates sorted
	ctx := document.NewMap()
	ctx.Set("plain", map[string]any{"b": 1, "c": 2, "a": 3})
	got2, err := New(Options{}).Render("{% for k in plain %}{{k}}{% endfor %}", ctx)
	if err != nil || got2 != "abc" {
		t.Fatalf("plain map iteration = %q, %v", got2, err)
	}
	// and backwards with reversed; prints and writes sorted too
	ctx.Set("ints", map[int]any{2: "b", 1: "a"})
	got3, err := New(Options{}).Render("{% for k in plain reversed %}{{k}}{% endfor %}|{% for k, v in ints %}{{k}}{{v}}{% endfor %}|{{ plain }}|{{ plain|json_dumps }}|{{ plain|items }}", ctx)
	if want := `cba|1a2b|{'a': 3, 'b': 1, 'c': 2}|{"a": 3, "b": 1, "c": 2}|[['a', 3], ['b', 1], ['c', 2]]`; err != nil || got3 != want {
		t.Fatalf("plain map = %q, %v; want %q", got3, err, want)
	}
}

func TestNonIdentifierKeysSkipped(t *testing.T) {
	env := New(Options{})
	ctx := ctxYAML(t, "set-values: {a: 1}\nsetValues: {a: 2}\n\"a.b\": 3\nok_1: 4\n")
	runRenderCases(t, env, ctx, []renderCase{
		{name: "renders", src: "{{ setValues.a }}{{ ok_1 }}", want: "24"},
		{name: "dash key is just undefined", src: "[{{ set }}]", want: "[]"},
	})
}

func TestErrors(t *testing.T) {
	env := New(Options{})
	macros := "{%- macro m1() -%}\nx\n{%- endmacro -%}{%- macro bad() -%}\n{{ nope.x }}\n{%- endmacro -%}"
	ctx := withMacros(ctxYAML(t, "a: 1"), macros)

	t.Run("type, fields and message", func(t *testing.T) {
		src := "line1\n{{ a.b.c }}\n"
		_, err := env.Render(src, ctx)
		var terr *Error
		if !errors.As(err, &terr) {
			t.Fatalf("err = %v (%T), want *tmpl.Error", err, err)
		}
		if terr.Template != src {
			t.Errorf("Error.Template = %q, want the source without macros %q", terr.Template, src)
		}
		msg := err.Error()
		for _, want := range []string{"template error: ", "line 2 column 4", fmt.Sprintf("in template %q", src)} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q does not contain %q", msg, want)
			}
		}
		if terr.Unwrap() == nil {
			t.Error("Unwrap() = nil")
		}
	})
	t.Run("position on the first user line", func(t *testing.T) {
		_, err := env.Render("ab {{ nope.x }}", ctx)
		if err == nil || !strings.Contains(err.Error(), "line 1 column 7") {
			t.Fatalf("err = %v, want line 1 column 7", err)
		}
	})
	t.Run("error inside a macro", func(t *testing.T) {
		_, err := env.Render("x\n{{ bad() }}", ctx)
		if err == nil || !strings.Contains(err.Error(), "'nope' is undefined (macros (jinja2Macros.all) line 4 column 4") ||
			!strings.Contains(err.Error(), "called from line 2 column 4") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("source truncated to 200 characters", func(t *testing.T) {
		src := "{{ a.b.c }}" + strings.Repeat("é", 300)
		_, err := env.Render(src, nil)
		want := fmt.Sprintf("in template %q", (src)[:len("{{ a.b.c }}")+2*189])
		if err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Fatalf("err = %v, want suffix %s", err, want)
		}
	})
	runRenderCases(t, env, nil, []renderCase{
		{name: "syntax error", src: "{% if %}", wantErr: "template error: "},
		{name: "unclosed tag", src: "{% for x in y %}", wantErr: "template error: "},
		{name: "unknown filter", src: "{{ 'x'|nope }}", wantErr: "Filter 'nope' does not exist"},
		{name: "unknown tag", src: "{% nope %}", wantErr: "nope"},
		// pongo2 panics on these: recovered into an Error
		{name: "sorted string panics in pongo2", src: "{% for c in 'abc' sorted %}{{c}}{% endfor %}", wantErr: "internal template engine failure"},
		{name: "endless macro recursion", src: "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", wantErr: "render budget exceeded (depth: 32): macro 'f': calls nested too deeply"},
		{name: "too many macro args", src: "{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}", wantErr: "too many arguments"},
	})
}

func TestIsTemplate(t *testing.T) {
	for s, want := range map[string]bool{
		"plain": false, "{{ x }}": true, "a {% if %}": true, "{# c #}": true, "{ {": false, "": false,
	} {
		if got := IsTemplate(s); got != want {
			t.Errorf("IsTemplate(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestSandbox(t *testing.T) {
	env := New(Options{})
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("TOPSECRET {{ 1 }}"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CICD_TMPL_TEST_SECRET", "ENVSECRET")
	ctx := ctxYAML(t, "a: 1")
	cases := []renderCase{
		{name: "ssi etc/passwd", src: `{% ssi "/etc/passwd" %}`, wantErr: "Usage of tag 'ssi' is not allowed"},
		{name: "ssi parsed", src: fmt.Sprintf(`{%% ssi %q parsed %%}`, secret), wantErr: "Usage of tag 'ssi' is not allowed"},
		{name: "include", src: fmt.Sprintf(`{%% include %q %%}`, secret), wantErr: "Usage of tag 'include' is not allowed"},
		{name: "include if_exists", src: fmt.Sprintf(`{%% include %q if_exists %%}`, secret), wantErr: "Usage of tag 'include' is not allowed"},
		{name: "import", src: fmt.Sprintf(`{%% import %q m %%}`, secret), wantErr: "Usage of tag 'import' is not allowed"},
		{name: "extends", src: fmt.Sprintf(`{%% extends %q %%}`, secret), wantErr: "Usage of tag 'extends' is not allowed"},
		{name: "ifchanged", src: `{% for x in "ab" %}{% ifchanged %}{{x}}{% endifchanged %}{% endfor %}`, wantErr: "Usage of tag 'ifchanged' is not allowed"},
		{name: "cycle", src: `{% for x in "ab" %}{% cycle "a" "b" %}{% endfor %}`, wantErr: "Usage of tag 'cycle' is not allowed"},
		{name: "lorem", src: `{% lorem 100000000 w %}`, wantErr: "Usage of tag 'lorem' is not allowed"},
		{name: "no env access", src: `[{{ CICD_TMPL_TEST_SECRET }}{{ env.CICD_TMPL_TEST_SECRET }}]`, wantErr: "'env' is undefined"},
		{name: "no globals", src: `[{{ CICD_TMPL_TEST_SECRET }}{{ pongo2.version }}]`, want: "[6.0.0]"},
	}
	runRenderCases(t, env, ctx, cases)
	for _, tc := range cases {
		out, err := env.Render(tc.src, ctx)
		for _, leak := range []string{"TOPSECRET", "root:", "ENVSECRET"} {
			if strings.Contains(out, leak) || (err != nil && strings.Contains(err.Error(), leak)) {
				t.Errorf("%s leaked %q: out=%q err=%v", tc.name, leak, out, err)
			}
		}
	}
	if _, err := (noFiles{}).Get(secret); err == nil {
		t.Fatal("the sandbox loader returned a file")
	}
}

func TestCache(t *testing.T) {
	t.Run("parse once per distinct source", func(t *testing.T) {
		env := New(Options{})
		a := withMacros(ctxYAML(t, "x: 1"), "{%- macro m() -%}1{%- endmacro -%}")
		b := withMacros(ctxYAML(t, "x: 2"), "{%- macro m() -%}2{%- endmacro -%}")
		for i := 0; i < 3; i++ {
			for _, c := range []*document.Map{a, b} {
				if _, err := env.Render("{{ m() }}{{ x }}", c); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n := env.CacheLen(); n != 2 {
			t.Fatalf("CacheLen = %d, want 2 (one per macros+source text)", n)
		}
		outA, _ := env.Render("{{ m() }}{{ x }}", a)
		outB, _ := env.Render("{{ m() }}{{ x }}", b)
		if outA != "11" || outB != "22" {
			t.Fatalf("cached renders = %q %q, want 11 22", outA, outB)
		}
	})
	t.Run("bounded, least recently used dropped", func(t *testing.T) {
		env := New(Options{CacheSize: 2})
		for _, src := range []string{"a", "b", "a", "c"} {
			if _, err := env.Render(src, nil); err != nil {
				t.Fatal(err)
			}
		}
		if n := env.CacheLen(); n != 2 {
			t.Fatalf("CacheLen = %d, want 2", n)
		}
		if _, ok := env.cached("a"); !ok {
			t.Error(`"a" (recently used) was evicted`)
		}
		if _, ok := env.cached("b"); ok {
			t.Error(`"b" (least recently used) was kept`)
		}
	})
	t.Run("compile errors cached", func(t *testing.T) {
		env := New(Options{})
		for i := 0; i < 2; i++ {
			if _, err := env.Render("{% if %}", nil); err == nil {
				t.Fatal("want an error")
			}
		}
		if env.CacheLen() != 1 {
			t.Fatalf("CacheLen = %d, want 1", env.CacheLen())
		}
	})
	t.Run("disabled", func(t *testing.T) {
		env := New(Options{CacheSize: -1})
		if out, err := env.Render("{{ 1 }}", nil); err != nil || out != "1" {
			t.Fatalf("Render = %q, %v", out, err)
		}
		if env.CacheLen() != 0 {
			t.Fatalf("CacheLen = %d, want 0", env.CacheLen())
		}
	})
}

// TestConcurrentOrderedIteration renders in parallel with contexts whose
// maps have different key orders: each render must see its own order. Run
// with -race.
func TestConcurrentOrderedIteration(t *testing.T) {
	env := New(Options{})
	const workers = 50
	letters := []string{"a", "b", "c", "d", "e", "f", "g"}
	src := `{% for k, v in m %}{{k}}{% endfor %}|{% for p in m|items %}{{p.0}}{% endfor %}|{{ m|json_dumps }}|` +
		`{% with r=js|from_json %}{% for k in r %}{{k}}{% endfor %}{% endwith %}`
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// a worker-specific permutation of the letters
			keys := append([]string(nil), letters...)
			for i := range keys {
				j := (i*7 + w) % len(keys)
				keys[i], keys[j] = keys[j], keys[i]
			}
			m := document.NewMap()
			js := document.NewMap()
			for i, k := range keys {
				m.Set(k, i)
				js.Set(k, w)
			}
			ctx := document.NewMap()
			ctx.Set("m", m)
			ctx.Set("js", document.MustJSON(js, document.JSONStyle{}))
			order := strings.Join(keys, "")
			want := order + "|" + order + "|" + document.MustJSON(m, document.PythonJSON) + "|" + order
			for i := 0; i < 20; i++ {
				got, err := env.Render(src, ctx)
				if err != nil {
					errs <- err
					return
				}
				if got != want {
					errs <- fmt.Errorf("worker %d: got %q, want %q", w, got, want)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
