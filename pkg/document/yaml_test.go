package document

import (
	"strings"
	"testing"
	"time"
)

// A mapping key that is a map or a list is an error, as in PyYAML ("found
// unhashable key"); it is never turned into text such as "&{[...] map[...]}".
func TestParseYAMLRejectsNonScalarKeys(t *testing.T) {
	cases := []struct{ in, want string }{
		{"{{ hello(state.who) }}\n", "line 1, column 2: a mapping key is a map"},
		{"{[1,2]: x}", "line 1, column 2: a mapping key is a list"},
		{"? [1,2]\n: x\n", "line 1, column 3: a mapping key is a list"},
		{"? {a: 1}\n: x\n", "line 1, column 3: a mapping key is a map"},
		{"k: &a [1]\n*a : 2\n", "line 1, column 4: a mapping key is a list"},
		{"a:\n  b:\n    {c: 1}: x\n", "line 3, column 5: a mapping key is a map"},
		{"- {[x]: 1}\n", "a mapping key is a list"},
	}
	for _, c := range cases {
		v, err := ParseYAML([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "malformed YAML: ") {
			t.Errorf("ParseYAML(%q) = %s, %v; want an error containing %q", c.in, js(v), err, c.want)
		}
	}
	// Scalar keys of every type are fine and become text.
	m := mustYAML(t, "2: a\ntrue: b\nnull: c\n1.5: d\n? x\n")
	if got := js(m); got != `{"2": "a", "true": "b", "null": "c", "1.5": "d", "x": null}` {
		t.Errorf("scalar keys: %s", got)
	}
}

// The error names the problem and where, never the (possibly huge) input.
func TestParseYAMLErrorsDoNotEchoTheInput(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	for _, in := range []string{
		"{{ " + big + " }}\n",
		"a: 1\n---\n" + big + "\n",
		"{a: 1} " + big,
		"k: " + big + "\n{[1]: 2}: 3\n",
		"<<: " + big + "\n",
		"a: 1.0e+999" + strings.Repeat("0", 1000) + "\n",
	} {
		_, err := ParseYAML([]byte(in))
		if err == nil {
			t.Errorf("%.40q...: want an error", in)
			continue
		}
		if len(err.Error()) > 200 || strings.Contains(err.Error(), "xxxxxxxxxx") {
			t.Errorf("%.40q...: error echoes the input (%d bytes): %.200s", in, len(err.Error()), err)
		}
	}
}

// safe_load reads exactly one document: a second one, or text after the end
// of the first, is an error; a "..." end marker and comments are not.
func TestParseYAMLSingleDocument(t *testing.T) {
	errs := []struct{ in, want string }{
		{"a: 1\n---\nb: 2\n", "expected a single document, but found another document at line 2"},
		{"a: 1\n---\n", "found another document"},
		{"a: 1\n--- !!str\n", "found another document"},
		{"a: 1\n...\n---\nb: 2\n", "found another document at line 3"},
		{"a: 1\n...\nb: 2\n", "content after the end of the document"},
		{"[1,2] trailing", "content after the end of the document"},
		{"{{ hello(state.who) }} / more text\nline2\n", "content after the end of the document"},
		{"...\n", "malformed YAML"},
	}
	for _, c := range errs {
		if v, err := ParseYAML([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseYAML(%q) = %s, %v; want an error containing %q", c.in, js(v), err, c.want)
		}
	}
	oks := []struct{ in, want string }{
		{"", "null"},
		{"# only a comment\n", "null"},
		{"---\n", "null"},
		{"--- a\n", `"a"`},
		{"a: 1\n...\n", `{"a": 1}`},
		{"a: 1\n...\n# comment\n", `{"a": 1}`},
		{"%YAML 1.1\n---\na: 1\n", `{"a": 1}`},
		{"{a: 1} # comment\n", `{"a": 1}`},
	}
	for _, c := range oks {
		v, err := ParseYAML([]byte(c.in))
		if err != nil || js(v) != c.want {
			t.Errorf("ParseYAML(%q) = %s, %v; want %s", c.in, js(v), err, c.want)
		}
	}
}

// Plain scalars are read with PyYAML's (YAML 1.1) rules, not yaml.v3's.
func TestParseYAMLPlainScalarsLikePyYAML(t *testing.T) {
	cases := map[string]string{
		// strings for PyYAML, numbers for yaml.v3
		"1e3": `"1e3"`, "1e-7": `"1e-7"`, "1.5e3": `"1.5e3"`, "1.e5": `"1.e5"`, "0o17": `"0o17"`, "08": `"08"`,
		"0888": `"0888"`, "0X1F": `"0X1F"`, "0B1": `"0B1"`, "+.5": `"+.5"`, "7e12345": `"7e12345"`,
		// numbers for PyYAML, strings for yaml.v3
		"1:20": "80", "190:20:30": "685230", "1:20.5": "80.5",
		// the same for both
		"012": "10", "0777": "511", "0x1F": "31", "-0x1F": "-31", "0b101": "5", "1_000": "1000", "+1": "1", "-0": "0",
		"1.5": "1.5", ".5": "0.5", "3.": "3", "1.0e+3": "1000", "1.e+5": "100000", "1_2.3_4": "12.34", "-1.5": "-1.5",
		"9223372036854775807": "9223372036854775807", "12345678901234567890": "12345678901234567000",
		"yes": "true", "No": "false", "on": "true", "OFF": "false", "True": "true", "y": `"y"`, "n": `"n"`, "tRUE": `"tRUE"`,
		"~": "null", "null": "null", "NULL": "null", "nULL": `"nULL"`, "": "null",
		"2020-01-01": `"2020-01-01"`, "1:60": `"1:60"`, "1.0e400": `"1.0e400"`, "._5": `"._5"`,
		// quoted or tagged: as written
		"'08'": `"08"`, `"1:20"`: `"1:20"`, "!!int 12": "12", "!!str 12": `"12"`, "!!float 1": "1",
		// a big int written back by MarshalYAML (found by FuzzParseYAML)
		"!!float 12345678901234567000": "12345678901234567000",
	}
	for in, want := range cases {
		m, err := ParseYAMLMap([]byte("k: " + in + "\n"))
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		v, _ := m.Get("k")
		if got := MustJSON(v, JSONStyle{}); got != want {
			t.Errorf("k: %s = %s, want %s", in, got, want)
		}
	}
	for _, in := range []string{".inf", "-.Inf", ".NaN", "1.0e+400"} {
		if _, err := ParseYAML([]byte("k: " + in)); err == nil || !strings.Contains(err.Error(), "NaN and infinite numbers are not supported") {
			t.Errorf("%s: want an error, got %v", in, err)
		}
	}
}

// Merge keys ("<<") follow PyYAML's flatten_mapping: merged keys first (the
// last merged map's first), own keys win, an earlier merged map wins.
func TestParseYAMLMergeKeys(t *testing.T) {
	cases := []struct{ in, want string }{
		{"c: 0\n<<: {a: 1, b: 2}\nb: 3\n", `{"a": 1, "b": 3, "c": 0}`},
		{"x: &a {a: 1}\ny: &b {b: 2, a: 9}\nz:\n  <<: [*a, *b]\n  c: 3\n", `{"x": {"a": 1}, "y": {"b": 2, "a": 9}, "z": {"b": 2, "a": 1, "c": 3}}`},
		{"base: &b {k: {n: 1}, l: [1]}\nd:\n  <<: *b\n  l: [2]\n", `{"base": {"k": {"n": 1}, "l": [1]}, "d": {"k": {"n": 1}, "l": [2]}}`},
		{"a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n", `{"a": {"x": 1}, "b": {"x": 1, "y": 2}, "c": {"x": 1, "y": 2, "z": 3}}`},
	}
	for _, c := range cases {
		v, err := ParseYAML([]byte(c.in))
		if err != nil || js(v) != c.want {
			t.Errorf("ParseYAML(%q) = %s, %v\nwant %s", c.in, js(v), err, c.want)
		}
	}
	for _, in := range []string{"<<: 1\n", "<<: [1]\n", "a: &a [1]\n<<: *a\n"} {
		if _, err := ParseYAML([]byte(in)); err == nil || !strings.Contains(err.Error(), "for merging (<<)") {
			t.Errorf("ParseYAML(%q): want a merge error, got %v", in, err)
		}
	}
}

// A small text that expands to a huge value through aliases or merge keys is
// refused quickly instead of exhausting memory.
func TestParseYAMLRefusesAliasBombs(t *testing.T) {
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		laughs += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		prev = n
	}
	merges := "a: &a {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8, k9: 9}\n"
	prev = "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		merges += n + ": &" + n + " {<<: [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]}\n"
		prev = n
	}
	for name, in := range map[string]string{"aliases": laughs, "merge keys": merges} {
		start := time.Now()
		_, err := ParseYAML([]byte(in))
		if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
			t.Errorf("%s: want an excessive aliasing error, got %v", name, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %v", name, d)
		}
	}
	// Ordinary reuse is fine.
	ok := "d: &d {image: alpine, pull: always}\n"
	for i := 0; i < 200; i++ {
		ok += "s" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + ": {<<: *d, n: 1}\n"
	}
	if _, err := ParseYAML([]byte(ok)); err != nil {
		t.Fatal(err)
	}
}

// Strings that a YAML 1.1 reader takes for something else are quoted by
// MarshalYAML (yaml.v3 leaves yes, on, 1:20 and << plain), so the local
// YAML file reads back as what was stored.
func TestMarshalYAMLQuotesYAML11LookAlikes(t *testing.T) {
	m := NewMap()
	for _, s := range []string{"yes", "No", "on", "OFF", "1:20", "<<", "=", "012", "1e3", "x", "2020-01-01"} {
		m.Set("k"+s, s)
	}
	out, err := MarshalYAML(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseYAMLMap(out)
	if err != nil {
		t.Fatal(err)
	}
	if js(back) != js(m) {
		t.Fatalf("read back\n%s\nwant\n%s\nfrom\n%s", js(back), js(m), out)
	}
	for _, s := range []string{`kyes: "yes"`, `kon: "on"`, `k1:20: "1:20"`, `k<<: "<<"`, "kx: x\n"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}
