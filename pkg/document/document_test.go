package document

import (
	"errors"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/internal/fuzzbudget"
)

func mustYAML(t *testing.T, s string) *Map {
	t.Helper()
	m, err := ParseYAMLMap([]byte(s))
	if err != nil {
		t.Fatalf("ParseYAMLMap: %v", err)
	}
	return m
}

func js(v any) string { return MustJSON(v, PythonJSON) }

func TestParseYAMLKeepsOrderAndTypes(t *testing.T) {
	m := mustYAML(t, "z: 1\na: 1.5\nm: [x, 2, true]\nyes_: yes\nn: null\nq: '123'\nb: False\n")
	if got := strings.Join(m.Keys(), ","); got != "z,a,m,yes_,n,q,b" {
		t.Fatalf("order = %s", got)
	}
	want := `{"z": 1, "a": 1.5, "m": ["x", 2, true], "yes_": true, "n": null, "q": "123", "b": false}`
	if got := js(m); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestParseYAMLErrors(t *testing.T) {
	for _, in := range []string{"a: [1, 2", "- a\n- b\n", "a: b: c", "a: .nan", "a: -.inf"} {
		if _, err := ParseYAMLMap([]byte(in)); err == nil {
			t.Errorf("ParseYAMLMap(%q): want error", in)
		}
	}
}

func TestJSONRoundTripAndStyles(t *testing.T) {
	in := `{"b":{"y":1,"x":[1,2.5,"é<>&'"]},"a":null,"c":true}`
	v, err := ParseJSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		style JSONStyle
		want  string
	}{
		{JSONStyle{}, `{"b":{"y":1,"x":[1,2.5,"é<>&'"]},"a":null,"c":true}`},
		{PythonJSON, `{"b": {"y": 1, "x": [1, 2.5, "\u00e9<>&'"]}, "a": null, "c": true}`},
		{JSONStyle{Python: true, SortKeys: true, HTMLSafe: true}, `{"a": null, "b": {"x": [1, 2.5, "é\u003c\u003e\u0026\u0027"], "y": 1}, "c": true}`},
		{JSONStyle{Indent: 2}, "{\n  \"b\": {\n    \"y\": 1,\n    \"x\": [\n      1,\n      2.5,\n      \"é<>&'\"\n    ]\n  },\n  \"a\": null,\n  \"c\": true\n}"},
	}
	for _, c := range cases {
		if got := MustJSON(v, c.style); got != c.want {
			t.Errorf("style %+v:\ngot  %s\nwant %s", c.style, got, c.want)
		}
	}
	if _, err := ParseJSON([]byte(`{"a":1} x`)); err == nil {
		t.Error("trailing data: want error")
	}
	if got := MustJSON("😀", PythonJSON); got != `"\ud83d\ude00"` {
		t.Errorf("surrogates: %s", got)
	}
}

func TestPathLookup(t *testing.T) {
	doc := mustYAML(t, `
state:
  key1: value1
  list: [a, b, c]
  items: [{n: 1, x: {deep: d1}}, {n: 2}, {m: 3}]
  event-handlers: {on-x: yes-x}
other:
  x: {deep: d2}
`)
	cases := []struct {
		expr string
		want string // JSON, "-" = no match
	}{
		{"state.key1", `"value1"`},
		{"$.state.key1", `"value1"`},
		{"state.list[2]", `"c"`},
		{"state.list[-1]", `"c"`},
		{"state.list[5]", "-"},
		{"state.list[*]", `["a", "b", "c"]`},
		{"state.list[0:2]", `["a", "b"]`},
		{"state.items[*].n", `[1, 2]`},
		{"state.items[2].m", `3`},
		{"$..deep", `["d1", "d2"]`},
		{"$..key1", `"value1"`},
		{"state.event-handlers.on-x", `"yes-x"`},
		{"state['event-handlers']", `{"on-x": "yes-x"}`},
		{"state.missing.x", "-"},
		{"state.key1.x", "-"},
		{"other.*", `{"deep": "d2"}`},
		{"$", "doc"},
	}
	for _, c := range cases {
		v, ok, err := Lookup(doc, c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		switch {
		case c.want == "-":
			if ok {
				t.Errorf("%s: want no match, got %s", c.expr, js(v))
			}
		case c.want == "doc":
			if v != any(doc) {
				t.Errorf("$: want the document")
			}
		case !ok:
			t.Errorf("%s: no match, want %s", c.expr, c.want)
		case js(v) != c.want:
			t.Errorf("%s: got %s want %s", c.expr, js(v), c.want)
		}
	}
}

func TestPathParseErrors(t *testing.T) {
	for _, e := range []string{"", "a.", "a..", "a[", "a[x]", "a b", "a['b", "x=1 y=2"} {
		if _, err := ParsePath(e); err == nil {
			t.Errorf("ParsePath(%q): want error", e)
		}
	}
}

func TestSetPathRules(t *testing.T) {
	cases := []struct {
		name  string
		start string
		sets  [][2]string
		want  string
		err   string
	}{
		{"create nested", `{}`, [][2]string{{"state.a.b", "v"}}, `{"state": {"a": {"b": "v"}}}`, ""},
		{"values stay strings", `{}`, [][2]string{{"s.n", "123"}, {"s.b", "true"}}, `{"s": {"n": "123", "b": "true"}}`, ""},
		{"keeps order on overwrite", `{a: 1, b: 2}`, [][2]string{{"a", "x"}}, `{"a": "x", "b": 2}`, ""},
		{"non-map on the way is replaced", `{s: {who2: v}}`, [][2]string{{"s.who2.sub.deeper", "x"}}, `{"s": {"who2": "x"}}`, ""},
		{"list create", `{}`, [][2]string{{"l[]", "a,b,c"}}, `{"l": ["a", "b", "c"]}`, ""},
		{"list append keeps dups", `{l: [a]}`, [][2]string{{"l[]", "a,b"}}, `{"l": ["a", "a", "b"]}`, ""},
		{"list clear then append in one call", `{l: [q]}`, [][2]string{{"l[]", "[]"}, {"l[]", "x,y,z"}, {"l[]", "d"}}, `{"l": ["x", "y", "z", "d"]}`, ""},
		{"set dedups", `{}`, [][2]string{{"s{}", "a,a,a"}, {"s{}", "a,b,b"}}, `{"s": ["a", "b"]}`, ""},
		{"set clear", `{s: [a]}`, [][2]string{{"s{}", "[]"}}, `{"s": []}`, ""},
		{"set keeps first order", `{}`, [][2]string{{"s{}", "[]"}, {"s{}", "x,y,z"}, {"s{}", "d,d,d"}}, `{"s": ["x", "y", "z", "d"]}`, ""},
		{"marker on falsy seeds list", `{l: ""}`, [][2]string{{"l[]", "a"}}, `{"l": ["a"]}`, ""},
		{"marker on string fails", `{l: text}`, [][2]string{{"l[]", "a"}}, "", "not a list"},
		{"marker on map fails", `{l: {a: 1}}`, [][2]string{{"l{}", "a"}}, "", "not a list"},
		{"value with equals", `{}`, [][2]string{{"a", "x=1"}}, `{"a": "x=1"}`, ""},
		{"empty segment", `{}`, [][2]string{{"a..b", "x"}}, "", "empty segment"},
		{"invalid UTF-8", `{}`, [][2]string{{"a.\xe1", "x"}}, "", "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := mustYAML(t, c.start)
			var err error
			for _, s := range c.sets {
				if err = SetPath(m, s[0], s[1]); err != nil {
					break
				}
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := js(m); got != c.want {
				t.Fatalf("got %s want %s", got, c.want)
			}
		})
	}
}

func TestParseAssignment(t *testing.T) {
	a, err := ParseAssignment("  state.k = a=b  ", false)
	if err != nil || a.Path != "state.k" || a.Value != "a=b" {
		t.Fatalf("got %+v %v", a, err)
	}
	for _, bad := range []string{"novalue", "=x", "k="} {
		if _, err := ParseAssignment(bad, false); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
	if a, err := ParseAssignment("k=", true); err != nil || a.Value != "" {
		t.Errorf("empty allowed: %+v %v", a, err)
	}
}

func TestMergeRules(t *testing.T) {
	cases := []struct {
		name, a, b, want, err string
	}{
		{"lists replaced", `{listKey: [1,2,3]}`, `{listKey: [9]}`, `{"listKey": [9]}`, ""},
		{"nested merge and order", `{nested: {a: 1, b: 2}, z: 1}`, `{nested: {b: 3, c: 4}, y: 2}`, `{"nested": {"a": 1, "b": 3, "c": 4}, "z": 1, "y": 2}`, ""},
		{"disable inherited handler", `{notify: {message: m}}`, `{notify: {enabled: false}}`, `{"notify": {"message": "m", "enabled": false}}`, ""},
		{"falsy base takes any type", `{a: "", b: 0, c: null, d: {}}`, `{a: {x: 1}, b: s, c: [1], d: 2}`, `{"a": {"x": 1}, "b": "s", "c": [1], "d": 2}`, ""},
		{"type change fails", `{a: {x: 1}}`, `{a: str}`, "", "cannot merge \"a\""},
		{"null override fails", `{a: {x: 1}}`, `{a: null}`, "", "cannot merge"},
		{"int vs float fails", `{a: 1}`, `{a: 1.5}`, "", "cannot merge"},
		{"deep type change names path", `{a: {b: {c: 1}}}`, `{a: {b: {c: x}}}`, "", `"a.b.c"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := mustYAML(t, c.a), mustYAML(t, c.b)
			before := js(a)
			got, err := Merge(a, b)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if js(got) != c.want {
				t.Fatalf("got %s want %s", js(got), c.want)
			}
			if js(a) != before {
				t.Fatal("Merge modified its input")
			}
		})
	}
}

func TestCloneIsDeep(t *testing.T) {
	m := mustYAML(t, `{a: {b: [1, {c: 2}]}}`)
	c := CloneMap(m)
	_ = SetPath(c, "a.b", "x")
	if js(m) != `{"a": {"b": [1, {"c": 2}]}}` {
		t.Fatalf("original changed: %s", js(m))
	}
}

func TestMarshalYAMLRoundTrip(t *testing.T) {
	m := mustYAML(t, "b: {y: 1, x: [1, 'two', null]}\na: \"123\"\nc: 'multi\n\n  line'\n")
	out, err := MarshalYAML(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseYAMLMap(out)
	if err != nil {
		t.Fatal(err)
	}
	if js(back) != js(m) {
		t.Fatalf("round trip:\n%s\n%s", js(back), js(m))
	}
}

// FuzzPathAndSet parses, finds and sets any path and assignment: nothing
// panics, the document stays encodable (or too deep: ErrTooDeep) and what
// is encoded reads back, and the work stays within the
// input's resource budget (internal/fuzzbudget): an index or slice in a
// path never makes a set or a find allocate by its value.
func FuzzPathAndSet(f *testing.F) {
	for _, s := range []string{"state.a", "$..x", "a[*].b", "a[-1]", "a[1:2]", "a['b']", "l[]", "s{}", "a..b", "[", "$", "a.b.c[]"} {
		f.Add(s, "a,b,[]")
	}
	for _, s := range []string{"state.l[100000000]", "a[99999999999999999999]", "state.l[-100000000]", "a[0:100000000:1]", "state.l[0:200000000]",
		strings.Repeat("a.", 50000) + "b", strings.Repeat("a[0]", 20000), strings.Repeat("[", 10000)} {
		f.Add(s, "{"+strings.Repeat("[", 1000)+"}")
	}
	f.Fuzz(func(t *testing.T, path, value string) {
		doc := NewMap()
		_ = SetPath(doc, "state.l", []any{"x"})
		var err error
		fuzzbudget.Check(t, fuzzbudget.For(fuzzbudget.Size(path, value), 0), func() {
			if p, err := ParsePath(path); err == nil {
				_ = p.Find(doc)
			}
			_ = SetPath(doc, path, value)
			if a, err := ParseAssignment(path+"="+value, true); err == nil {
				_ = SetPath(doc, a.Path, a.Value)
			}
			var b []byte
			if b, err = MarshalJSON(doc, PythonJSON); err == nil {
				_, err = ParseJSON(b)
			}
		}, path, value)
		// a document too deep to read back is refused when written (the
		// store writes nothing); anything written reads back
		if err != nil && !errors.Is(err, ErrTooDeep) {
			t.Fatalf("document not encodable, or not readable, after set: %v", err)
		}
	})
}
