package document

import (
	"strings"
	"testing"
)

// pyYAMLCases are values (as JSON) and what PyYAML 6.0 prints for them with
// yaml.dump(value, default_flow_style=False, sort_keys=False, indent=N) (the
// original's to_nice_yaml filter), captured from PyYAML itself.
var pyYAMLCases = []struct {
	name   string
	json   string
	indent int
	want   string
}{
	{"list under a key", "{\"k\": [1, {\"a\": [2]}]}", 2, "k:\n- 1\n- a:\n  - 2\n"},
	{"lists flush at every depth", "{\"a\": {\"b\": {\"c\": [1, [2, 3], {\"d\": [4, {\"e\": [5]}]}]}}}", 2, "a:\n  b:\n    c:\n    - 1\n    - - 2\n      - 3\n    - d:\n      - 4\n      - e:\n        - 5\n"},
	{"top-level list of lists and maps", "[1, [2, [3, 4]], {\"a\": [1, 2], \"b\": {\"c\": [3]}}]", 2, "- 1\n- - 2\n  - - 3\n    - 4\n- a:\n  - 1\n  - 2\n  b:\n    c:\n    - 3\n"},
	{"list item maps", "[{\"a\": 1, \"b\": 2}, {\"c\": [{\"d\": 1}]}]", 2, "- a: 1\n  b: 2\n- c:\n  - d: 1\n"},
	{"list of list of map", "{\"k\": [[{\"a\": [1]}]]}", 2, "k:\n- - a:\n    - 1\n"},
	{"empty collections", "{\"e\": [], \"f\": {}, \"g\": [[]], \"h\": [{}]}", 2, "e: []\nf: {}\ng:\n- []\nh:\n- {}\n"},
	{"indent 3", "{\"a\": {\"b\": {\"c\": [1, [2, 3], {\"d\": [4, {\"e\": [5]}]}]}}}", 3, "a:\n   b:\n      c:\n      - 1\n      -  - 2\n         - 3\n      -  d:\n         - 4\n         -  e:\n            - 5\n"},
	{"indent 4", "[1, [2, [3, 4]], {\"a\": [1, 2], \"b\": {\"c\": [3]}}]", 4, "- 1\n-   - 2\n    -   - 3\n        - 4\n-   a:\n    - 1\n    - 2\n    b:\n        c:\n        - 3\n"},
	{"indent 4 list item maps", "[{\"a\": 1, \"b\": 2}, {\"c\": [{\"d\": 1}]}]", 4, "-   a: 1\n    b: 2\n-   c:\n    -   d: 1\n"},
	{"indent 9", "{\"k\": [{\"a\": {\"b\": [1]}}]}", 9, "k:\n-        a:\n                  b:\n                  - 1\n"},
	{"indent 1 is 2", "{\"k\": {\"a\": [1]}}", 1, "k:\n  a:\n  - 1\n"},
	{"indent 10 is 2", "{\"k\": {\"a\": [1]}}", 10, "k:\n  a:\n  - 1\n"},
	{"strings that read back as other types are quoted", "{\"b\": [\"yes\", \"No\", \"on\", \"OFF\", \"true\", \"null\", \"~\", \"\"], \"n\": [\"123\", \"-1\", \"+1\", \"012\", \"0x1F\", \"0b101\", \"1_000\", \"1:20\", \"1.5\", \".5\", \"3.\", \".inf\", \"-.Inf\", \".NaN\", \"1e3\", \"1e-7\", \"0o17\", \"08\"], \"o\": [\"2020-01-01\", \"2020-1-2 3:04:05\", \"<<\", \"=\", \"!\", \"*\", \"&\"]}", 2, "b:\n- 'yes'\n- 'No'\n- 'on'\n- 'OFF'\n- 'true'\n- 'null'\n- '~'\n- ''\nn:\n- '123'\n- '-1'\n- '+1'\n- '012'\n- '0x1F'\n- '0b101'\n- '1_000'\n- '1:20'\n- '1.5'\n- '.5'\n- '3.'\n- '.inf'\n- '-.Inf'\n- '.NaN'\n- 1e3\n- 1e-7\n- 0o17\n- 08\no:\n- '2020-01-01'\n- '2020-1-2 3:04:05'\n- '<<'\n- '='\n- '!'\n- '*'\n- '&'\n"},
	{"indicators", "{\"i\": [\"-x\", \"- x\", \"-\", \"--\", \"---\", \"...\", \"a: b\", \"x:\", \":x\", \"?x\", \"? x\", \"#x\", \"key#x\", \"key #x\", \"a,b\", \"[x]\", \"{x}\", \"@x\", \"`x\", \"|x\", \">x\", \"%x\", \"'x'\", \"\\\"q\\\"\", \"it's\", \"a|b\", \"a\\\\b\", \"http://h/p\", \"{{ x }}\"]}", 2, "i:\n- -x\n- '- x'\n- '-'\n- --\n- '---'\n- '...'\n- 'a: b'\n- 'x:'\n- :x\n- ?x\n- '? x'\n- '#x'\n- key#x\n- 'key #x'\n- a,b\n- '[x]'\n- '{x}'\n- '@x'\n- '`x'\n- '|x'\n- '>x'\n- '%x'\n- '''x'''\n- '\"q\"'\n- it's\n- a|b\n- a\\b\n- http://h/p\n- '{{ x }}'\n"},
	{"spaces", "{\"s\": [\" lead\", \"trail \", \"a  b\", \"  \"]}", 2, "s:\n- ' lead'\n- 'trail '\n- a  b\n- '  '\n"},
	{"non-ASCII and control characters", "{\"u\": [\"\u00e9\", \"caf\u00e9 au lait\", \"\u65e5\u672c\", \"\U0001f600\", \"\\u0001\", \"tab\\there\", \"\u007f\", \"\u0085\", \"\u2028\", \"\ufeff\", \"\u00a0\"]}", 2, "u:\n- \"\\xE9\"\n- \"caf\\xE9 au lait\"\n- \"\\u65E5\\u672C\"\n- \"\\U0001F600\"\n- \"\\x01\"\n- \"tab\\there\"\n- \"\\x7F\"\n- \"\\N\"\n- \"\\L\"\n- \"\\uFEFF\"\n- \"\\_\"\n"},
	{"line breaks", "{\"m\": [\"x\\ny\", \"x\\ny\\n\", \"x\\n\\ny\", \"\\nx\", \" x\\ny\", \"x \\ny\", \"x\\n y\"]}", 2, "m:\n- 'x\n\n  y'\n- 'x\n\n  y\n\n  '\n- 'x\n\n\n  y'\n- '\n\n  x'\n- ' x\n\n  y'\n- \"x \\ny\"\n- \"x\\n y\"\n"},
	{"long strings fold at spaces past column 80", "{\"p\": \"lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore\", \"q\": \"'lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore'\", \"d\": \"\u00e9 lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore\", \"w\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", 2, "p: lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\n  incididunt ut labore lorem ipsum dolor sit amet, consectetur adipiscing elit, sed\n  do eiusmod tempor incididunt ut labore\nq: '''lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\n  incididunt ut labore'''\nd: \"\\xE9 lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\\\n  \\ incididunt ut labore lorem ipsum dolor sit amet, consectetur adipiscing elit,\\\n  \\ sed do eiusmod tempor incididunt ut labore\"\nw: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"},
	{"long string in nested list", "{\"k\": [[\"lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore\"]]}", 4, "k:\n-   - lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\n        incididunt ut labore lorem ipsum dolor sit amet, consectetur adipiscing elit,\n        sed do eiusmod tempor incididunt ut labore\n"},
	{"keys", "{\"yes\": 1, \"123\": 2, \"\": 3, \"a b\": 4, \"x\\ny\": 5, \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\": 6, \"jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj\": 7, \"\u00e9\": 8, \"- a\": 9}", 2, "'yes': 1\n'123': 2\n? ''\n: 3\na b: 4\n? 'x\n\n  y'\n: 5\nkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk: 6\n? jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj\n: 7\n\"\\xE9\": 8\n'- a': 9\n"},
	{"numbers", "{\"i\": [0, -7, 9223372036854775807], \"f\": [0.0, -0.0, 1.5, 100.0, 1000000000000000.0, 1e+16, 1.5e+16, 0.0001, 1e-05, 2.5e-10, 123.456, 1e+300, 3.14159265358979]}", 2, "i:\n- 0\n- -7\n- 9223372036854775807\nf:\n- 0.0\n- -0.0\n- 1.5\n- 100.0\n- 1000000000000000.0\n- 1.0e+16\n- 1.5e+16\n- 0.0001\n- 1.0e-05\n- 2.5e-10\n- 123.456\n- 1.0e+300\n- 3.14159265358979\n"},
	{"booleans and null", "{\"t\": true, \"f\": false, \"n\": null}", 2, "t: true\nf: false\nn: null\n"},
	{"top-level string", "\"abc\"", 2, "abc\n...\n"},
	{"top-level quoted string", "\"yes\"", 2, "'yes'\n"},
	{"top-level empty string", "\"\"", 2, "''\n"},
	{"top-level multi-line string", "\"x\\ny\"", 2, "'x\n\n  y'\n"},
	{"top-level number", "1", 2, "1\n...\n"},
	{"top-level float", "1.5", 2, "1.5\n...\n"},
	{"top-level null", "null", 2, "null\n...\n"},
	{"top-level true", "true", 2, "true\n...\n"},
	{"top-level empty list", "[]", 2, "[]\n"},
	{"top-level empty map", "{}", 2, "{}\n"},
}

func TestMarshalPyYAMLMatchesPyYAML(t *testing.T) {
	for _, c := range pyYAMLCases {
		t.Run(c.name, func(t *testing.T) {
			v, err := ParseJSON([]byte(c.json))
			if err != nil {
				t.Fatal(err)
			}
			got, err := MarshalPyYAML(v, c.indent)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Fatalf("indent %d, %s\n got %q\nwant %q\n got:\n%s\nwant:\n%s", c.indent, c.json, got, c.want, got, c.want)
			}
		})
	}
}

// What MarshalPyYAML writes reads back (with ParseYAML) as the same value,
// except that the top-level plain scalar's "..." marker is part of the text.
func TestMarshalPyYAMLReadsBack(t *testing.T) {
	for _, c := range pyYAMLCases {
		v, _ := ParseJSON([]byte(c.json))
		out, err := MarshalPyYAML(v, c.indent)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseYAML(out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, out)
		}
		if MustJSON(back, JSONStyle{}) != MustJSON(v, JSONStyle{}) {
			t.Errorf("%s: read back %s, want %s", c.name, MustJSON(back, JSONStyle{}), MustJSON(v, JSONStyle{}))
		}
	}
}

func TestMarshalPyYAMLRejectsOtherTypes(t *testing.T) {
	m := NewMap()
	m.Set("k", struct{}{})
	if _, err := MarshalPyYAML(m, 2); err == nil || !strings.Contains(err.Error(), "cannot write") {
		t.Fatalf("want an error, got %v", err)
	}
}
