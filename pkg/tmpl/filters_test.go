package tmpl

import (
	"strings"
	"testing"

	"github.com/flosch/pongo2/v6"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

const filtersYAML = `
s: 'héllo "x" <a&b> it''s 😀'
m:
  z: 1
  a: [1, 2.5, true, null]
  n: {y: "é", b: x}
empty: {}
kv: "a=1,b=2,c,d=e=f,,=v,a=3"
js: '{"url": "http://h/p", "data": {"z": 1, "a": [1, 2]}, "u": "\u00e9"}'
badjs: '{"url": '
`

const mIndented2 = `{
  "z": 1,
  "a": [
    1,
    2.5,
    true,
    null
  ],
  "n": {
    "y": "\u00e9",
    "b": "x"
  }
}`

func TestFilterJSONDumps(t *testing.T) {
	runRenderCases(t, New(Options{}), ctxYAML(t, filtersYAML), []renderCase{
		{name: "string non-ASCII escaped", src: "{{ s|json_dumps }}", want: `"h\u00e9llo \"x\" <a&b> it's \ud83d\ude00"`},
		{name: "map key order and separators", src: "{{ m|json_dumps }}", want: `{"z": 1, "a": [1, 2.5, true, null], "n": {"y": "\u00e9", "b": "x"}}`},
		{name: "indent integer", src: "{{ m|json_dumps:2 }}", want: mIndented2},
		{name: "indent option", src: `{{ m|json_dumps:"indent=2" }}`, want: mIndented2},
		{name: "strip", src: `{{ s|json_dumps:"strip" }}`, want: `h\u00e9llo \"x\" <a&b> it's \ud83d\ude00`},
		{name: "strip and indent", src: `{{ m|json_dumps:"strip,indent=2" }}`, want: mIndented2[1 : len(mIndented2)-1]},
		{name: "strip empty string", src: `[{{ ""|json_dumps:"strip" }}]`, want: "[]"},
		{name: "empty map", src: "{{ empty|json_dumps }}", want: "{}"},
		{name: "null", src: "{{ m.a.3|json_dumps }}", want: "null"},
		{name: "undefined is null", src: "{{ missing|json_dumps }}", want: "null"},
		{name: "number", src: "{{ m.a.1|json_dumps }}", want: "2.5"},
		{name: "list", src: "{{ m.a|json_dumps }}", want: "[1, 2.5, true, null]"},
		{name: "from_json round trip keeps order", src: "{{ js|from_json|json_dumps }}", want: `{"url": "http://h/p", "data": {"z": 1, "a": [1, 2]}, "u": "\u00e9"}`},
		{name: "unknown option", src: `{{ s|json_dumps:"bogus" }}`, wantErr: `unknown option in the argument`},
		{name: "bad indent", src: `{{ s|json_dumps:"indent=x" }}`, wantErr: "bad indent"},
		{name: "float argument", src: `{{ s|json_dumps:1.5 }}`, wantErr: "argument must be"},
	})
}

func TestFilterToJSON(t *testing.T) {
	runRenderCases(t, New(Options{}), ctxYAML(t, filtersYAML), []renderCase{
		{name: "sorted keys", src: "{{ m|tojson }}", want: `{"a": [1, 2.5, true, null], "n": {"b": "x", "y": "\u00e9"}, "z": 1}`},
		{name: "html-safe escaping", src: "{{ s|tojson }}", want: `"h\u00e9llo \"x\" \u003ca\u0026b\u003e it\u0027s \ud83d\ude00"`},
		{name: "indent", src: "{{ m.n|tojson:2 }}", want: "{\n  \"b\": \"x\",\n  \"y\": \"\\u00e9\"\n}"},
		{name: "from_json sorted", src: "{{ js|from_json|tojson }}", want: `{"data": {"a": [1, 2], "z": 1}, "u": "\u00e9", "url": "http://h/p"}`},
		{name: "string argument", src: `{{ m|tojson:"x" }}`, wantErr: "argument must be an integer"},
	})
}

func TestFilterFromJSON(t *testing.T) {
	runRenderCases(t, New(Options{}), ctxYAML(t, filtersYAML), []renderCase{
		{name: "with then attribute", src: "{% with r=js|from_json %}{{ r.url }}{% endwith %}", want: "http://h/p"},
		{name: "set parenthesised", src: "{% set r = (js|from_json) %}{{ r.data.a.1 }}{{ r.u }}", want: "2é"},
		{name: "nested order", src: "{% with r=js|from_json %}{% for k, v in r.data %}{{k}}={{v}};{% endfor %}{% endwith %}", want: "z=1;a=[1, 2];"},
		{name: "list", src: `{{ '[1, 2.5, "x"]'|from_json|length }}`, want: "3"},
		{name: "string", src: `{{ '"str"'|from_json }}`, want: "str"},
		{name: "undefined attribute after parse", src: "{% with r=js|from_json %}{{ r.nope.x }}{% endwith %}", wantErr: "'r.nope' is undefined"},
		{name: "bad JSON", src: "{{ badjs|from_json }}", wantErr: "from_json: malformed JSON"},
		{name: "trailing data", src: `{{ '{} x'|from_json }}`, wantErr: "from_json: malformed JSON"},
		{name: "not a string", src: "{{ m|from_json }}", wantErr: "expected a JSON string, got map"},
		{name: "undefined", src: "{{ missing|from_json }}", wantErr: "expected a JSON string, got null"},
	})
}

// The expected texts are what PyYAML 6 prints for yaml.dump(value,
// default_flow_style=False, sort_keys=False, indent=N): lists flush under
// their key at every depth, "-" followed by indent-1 spaces before a nested
// list or map, non-ASCII escaped, YAML 1.1 look-alikes quoted.
func TestFilterToNiceYAML(t *testing.T) {
	const nested = `{"k": [1, {"a": [2, {"b": [3, [4, 5]]}]}], "m": {"n": [[6, 7], {"o": "p"}], "e": [], "f": {}}, "s": "it's: x", "u": "é", "q": "123"}`
	ctx := ctxYAML(t, filtersYAML)
	ctx.Set("nested", nested)
	runRenderCases(t, New(Options{}), ctx, []renderCase{
		{name: "key order", src: "{{ m|to_nice_yaml }}", want: "z: 1\na:\n- 1\n- 2.5\n- true\n- null\nn:\n  y: \"\\xE9\"\n  b: x\n"},
		{name: "indent 4", src: "{{ m.n|to_nice_yaml:4 }}{{ js|from_json|to_nice_yaml:4 }}", want: "y: \"\\xE9\"\nb: x\nurl: http://h/p\ndata:\n    z: 1\n    a:\n    - 1\n    - 2\nu: \"\\xE9\"\n"},
		{name: "nested lists and maps", src: "{{ nested|from_json|to_nice_yaml }}",
			want: "k:\n- 1\n- a:\n  - 2\n  - b:\n    - 3\n    - - 4\n      - 5\nm:\n  n:\n  - - 6\n    - 7\n  - o: p\n  e: []\n  f: {}\ns: 'it''s: x'\nu: \"\\xE9\"\nq: '123'\n"},
		{name: "nested lists and maps, indent 4", src: "{{ nested|from_json|to_nice_yaml:4 }}",
			want: "k:\n- 1\n-   a:\n    - 2\n    -   b:\n        - 3\n        -   - 4\n            - 5\nm:\n    n:\n    -   - 6\n        - 7\n    -   o: p\n    e: []\n    f: {}\ns: 'it''s: x'\nu: \"\\xE9\"\nq: '123'\n"},
		{name: "top-level scalar ends the document", src: `{{ "x"|to_nice_yaml }}`, want: "x\n...\n"},
		{name: "indent out of range is 2", src: "{{ m.n|to_nice_yaml:20 }}", want: "y: \"\\xE9\"\nb: x\n"},
		{name: "string argument", src: `{{ m|to_nice_yaml:"x" }}`, wantErr: "argument must be an integer"},
	})
}

func TestFilterKVCommaPairsToJSON(t *testing.T) {
	ctx := ctxYAML(t, filtersYAML)
	runRenderCases(t, New(Options{}), ctx, []renderCase{
		{name: "basic", src: `{{ "a=1,b=2,c"|kv_comma_pairs_to_json }}`, want: `{"a": "1", "b": "2"}`},
		{name: "a=b=c, empty pairs, empty key, repeated key", src: "{{ kv|kv_comma_pairs_to_json }}", want: `{"a": "3", "b": "2", "d": "e", "": "v"}`},
		{name: "empty", src: `{{ ""|kv_comma_pairs_to_json }}`, want: `{}`},
		{name: "no pairs", src: `{{ "x,y"|kv_comma_pairs_to_json }}`, want: `{}`},
		{name: "spaces kept, non-ASCII escaped", src: `{{ " k = é "|kv_comma_pairs_to_json }}`, want: `{" k ": " \u00e9 "}`},
		{name: "parse back", src: `{% with r="x=1"|kv_comma_pairs_to_json|from_json %}{{ r.x }}{% endwith %}`, want: "1"},
	})
}

func TestFilterToBase64(t *testing.T) {
	runRenderCases(t, New(Options{}), ctxYAML(t, filtersYAML), []renderCase{
		{name: "utf-8", src: `{{ "héllo"|to_base64 }}`, want: "aMOpbGxv"},
		{name: "empty", src: `[{{ ""|to_base64 }}]`, want: "[]"},
		{name: "number", src: `{{ 5|to_base64 }}`, want: "NQ=="},
		{name: "padding", src: `{{ "ab"|to_base64 }}`, want: "YWI="},
	})
}

func TestFilterItems(t *testing.T) {
	runRenderCases(t, New(Options{}), ctxYAML(t, filtersYAML), []renderCase{
		{name: "document order", src: "{% for p in m|items %}{{ p.0 }}{% endfor %}", want: "zan"},
		{name: "pairs", src: "{% for p in m.n|items %}{{ p.0 }}={{ p.1 }};{% endfor %}", want: "y=é;b=x;"},
		{name: "length", src: "{{ m|items|length }}", want: "3"},
		{name: "null gives empty list", src: "{{ missing|items|length }}", want: "0"},
		{name: "as JSON", src: "{{ m|items|json_dumps }}", want: `[["z", 1], ["a", [1, 2.5, true, null]], ["n", {"y": "\u00e9", "b": "x"}]]`},
		{name: "from_json map", src: "{% with r=js|from_json %}{% for p in r.data|items %}{{p.0}}={{p.1}};{% endfor %}{% endwith %}", want: "z=1;a=[1, 2];"},
		{name: "list is an error", src: "{{ m.a|items }}", wantErr: "items: expected a map, got list"},
	})
}

func TestBuiltinFiltersStillWork(t *testing.T) {
	runRenderCases(t, New(Options{}), ctxYAML(t, filtersYAML), []renderCase{
		{name: "upper", src: `{{ "abc"|upper }}`, want: "ABC"},
		{name: "cut", src: `{{ "a b c"|cut:" " }}`, want: "abc"},
		{name: "random", src: `{{ "7"|random }}{{ "123"|random|length }}`, want: "71"},
		{name: "default", src: `{{ ""|default:"x" }}`, want: "x"},
		{name: "join", src: `{{ m.a|join:"," }}`, want: "1,2.5,True,"},
	})
}

// Filters also take document values (not only the maps Render converts).
func TestFiltersTakeDocumentValues(t *testing.T) {
	doc := ctxYAML(t, "z: 1\na: {y: [1, 2]}\n")
	cases := []struct {
		name   string
		filter pongo2.FilterFunction
		param  *pongo2.Value
		want   string
	}{
		{"json_dumps", filterJSONDumps, nil, `{"z": 1, "a": {"y": [1, 2]}}`},
		{"tojson", filterToJSON, nil, `{"a": {"y": [1, 2]}, "z": 1}`},
		{"to_nice_yaml", filterToNiceYAML, nil, "z: 1\na:\n  y:\n  - 1\n  - 2\n"},
		{"items", filterItems, nil, "[['z', 1], ['a', {'y': [1, 2]}]]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.filter(pongo2.AsValue(doc), tc.param)
			if err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	// and converted values of other Go types
	out, err := filterJSONDumps(pongo2.AsValue([]string{"é", "b"}), nil)
	if err != nil || out.String() != `["\u00e9", "b"]` {
		t.Fatalf("[]string: %v %v", out, err)
	}
	if _, err := filterJSONDumps(pongo2.AsValue(struct{}{}), nil); err == nil || !strings.Contains(err.Error(), "not serializable") {
		t.Fatalf("struct: want a not serializable error, got %v", err)
	}
}

// TestFilterErrorsDoNotEchoValues: a filter's error names the filter and the
// problem, never the value or the argument (either may be a secret).
func TestFilterErrorsDoNotEchoValues(t *testing.T) {
	const secret = "s3cr3t-VALUE-42"
	env := New(Options{})
	ctx := document.NewMap()
	ctx.Set("v", "{"+secret)
	ctx.Set("opt", "indent="+secret)
	ctx.Set("opt2", secret)
	for _, src := range []string{
		`{{ v|from_json }}`,
		`{{ "x"|json_dumps:opt }}`,
		`{{ "x"|json_dumps:opt2 }}`,
		`{{ v|items }}`,
	} {
		_, err := env.Render(src, ctx)
		if err == nil {
			t.Fatalf("%s: no error", src)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error echoes the value: %v", src, err)
		}
	}
	// positive control: the value is there to be echoed
	out, err := env.Render(`{{ v }}`, ctx)
	if err != nil || !strings.Contains(out, secret) {
		t.Fatalf("control: %q %v", out, err)
	}
}
