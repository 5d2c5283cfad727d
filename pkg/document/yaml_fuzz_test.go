package document

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/internal/fuzzbudget"
)

// yamlPerByte is the allocation FuzzParseYAML allows per input byte, in
// units of fuzzbudget.PerByte: yaml.v3 builds its tokens, events and nodes
// before the converter builds document values, about 150 B per byte of
// dense flow YAML (measured: 14.6 MiB for "[1,1,...]" of 100 kB).
const yamlPerByte = 4

// yamlBombs are YAML texts that expand or nest far beyond their size: issue
// 11's 500-byte "billion laughs" (nine levels of aliases), the same with
// merge keys, deep nesting in every syntax, and alias chains.
func yamlBombs() []string {
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	merges := "a: &a {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8, k9: 9}\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		laughs += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		merges += n + ": &" + n + " {<<: [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]}\n"
		prev = n
	}
	// As many aliased values as the converter's ratio allows: 1% of the
	// values own, 99% through aliases.
	ratio := "a: &a [" + strings.Repeat("x,", 99) + "x]\nown: [" + strings.Repeat("1,", 1000) + "1]\nb: [" + strings.Repeat("*a,", 1000) + "*a]\n"
	var chain, block strings.Builder
	chain.WriteString("a0: &a0 [x]\n")
	for i := 1; i < 300; i++ {
		fmt.Fprintf(&chain, "a%d: &a%d [*a%d]\n", i, i, i-1)
	}
	for i := 0; i < 1200; i++ {
		block.WriteString(strings.Repeat(" ", i) + "k:\n")
	}
	return []string{
		laughs,
		merges,
		ratio,
		chain.String(),
		strings.Repeat("[", 1001) + strings.Repeat("]", 1001),
		strings.Repeat("[", 100000),
		strings.Repeat("{a: ", 1001) + "1" + strings.Repeat("}", 1001),
		strings.Repeat("- ", 1200) + "x",
		block.String(),
		"&a [*a]",
		"a: &a {<<: *a}",
		"&a [&b [&c [*a, *b, *c]]]",
		"a: &a x\nb: [" + strings.Repeat("*a, ", 20000) + "*a]\n",
		"a: '" + strings.Repeat("x", 1<<20) + "'",
		"k: !!binary " + strings.Repeat("QUFB", 10000),
	}
}

// maxRoundTrip is the size of the JSON encoding of the largest value
// FuzzParseYAML writes back with MarshalYAML: yaml.v3's encoder allocates
// about 1.7 kB per scalar (its event queue), so a value expanded by aliases
// to 100,000 scalars would take seconds per input.
const maxRoundTrip = 64 << 10

// FuzzParseYAML parses any text as an app config or a set-yaml value is
// parsed (PyYAML's safe_load semantics: aliases, merge keys, one document),
// and encodes what it parsed as the controller stores it: nothing panics or
// overflows the stack; parsing and encoding stay within the input's
// resource budget (internal/fuzzbudget), whatever its aliases and nesting;
// a failure is a "malformed YAML" error; what MarshalYAML writes of a parsed
// value (up to maxRoundTrip) parses back to the same value.
func FuzzParseYAML(f *testing.F) {
	for _, s := range []string{"", "a: 1", "cicd-contexts: {stage: {channel: s}}", "- 1\n- 2.5\n- null\n- é", "? [a]\n: 1", "---\n...\n",
		"a: yes\nb: 012\nc: 1:20\nd: 2001-12-14t21:59:43.10-05:00\ne: .nan\nf: 123456789012345678901234567890"} {
		f.Add([]byte(s))
	}
	for _, s := range yamlBombs() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		var err error
		var enc []byte
		var encErr error
		fuzzbudget.Check(t, fuzzbudget.For(yamlPerByte*int64(len(data)), 0), func() {
			if v, err = ParseYAML(data); err == nil {
				enc, encErr = MarshalJSON(v, PythonJSON)
			}
		}, data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "malformed YAML: ") {
				t.Fatalf("%.80q: error %q lacks the prefix", data, err)
			}
			return
		}
		if encErr != nil {
			t.Fatalf("%.80q: parsed value not encodable: %v", data, encErr)
		}
		if len(enc) > maxRoundTrip {
			return
		}
		y, err := MarshalYAML(v)
		if err != nil {
			t.Fatalf("%.80q: MarshalYAML: %v", data, err)
		}
		back, err := ParseYAML(y)
		if err != nil {
			t.Fatalf("%.80q: re-parsing %.200q: %v", data, y, err)
		}
		if again := MustJSON(back, PythonJSON); again != string(enc) {
			t.Fatalf("%.80q: round trip via %.200q:\n got %.300s\nwant %.300s", data, y, again, enc)
		}
	})
}
