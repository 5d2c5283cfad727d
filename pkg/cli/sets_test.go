package cli

import (
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

func TestSplitSetPairs(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{`a=1`, []string{`a=1`}},
		{`a=1|b=2`, []string{`a=1`, `b=2`}},
		{`|a=1||`, []string{``, `a=1`, ``, ``}},
		{`a={{ x\|length }}`, []string{`a={{ x|length }}`}},
		{`a=\|`, []string{`a=|`}},
		{`a=1\||b=2`, []string{`a=1|`, `b=2`}},
		{`a=x\\|b=y`, []string{`a=x\`, `b=y`}},
		{`a=x\\\|y`, []string{`a=x\|y`}},
		{`a=x\\\\|y`, []string{`a=x\\`, `y`}},
		{`a=C:\dir\file`, []string{`a=C:\dir\file`}},
		{`a=\n|b=\t\`, []string{`a=\n`, `b=\t\`}},
		{`a=\\x|b`, []string{`a=\\x`, `b`}},
	}
	for _, c := range cases {
		if got := splitSetPairs(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitSetPairs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Without "\|" an argument splits exactly as the original's item.split('|');
// any list of pairs survives escaping, joining with '|' and splitting.
func TestSplitSetPairsProperties(t *testing.T) {
	// escape writes s for a --set argument; bar says a joining '|' follows.
	escape := func(s string, bar bool) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			switch {
			case s[i] == '|':
				b.WriteString(`\|`)
			case s[i] == '\\':
				// a run of backslashes before a '|' (its own or the
				// joining one) is doubled
				j := i
				for j < len(s) && s[j] == '\\' {
					j++
				}
				n := j - i
				if (j == len(s) && bar) || (j < len(s) && s[j] == '|') {
					n *= 2
				}
				b.WriteString(strings.Repeat(`\`, n))
				i = j - 1
			default:
				b.WriteByte(s[i])
			}
		}
		return b.String()
	}
	r := rand.New(rand.NewSource(1))
	alphabet := []byte(`ab=|\ `)
	randStr := func() string {
		b := make([]byte, r.Intn(8))
		for i := range b {
			b[i] = alphabet[r.Intn(len(alphabet))]
		}
		return string(b)
	}
	for i := 0; i < 20000; i++ {
		s := randStr()
		if !strings.Contains(s, `\|`) {
			if got, want := splitSetPairs(s), strings.Split(s, "|"); !reflect.DeepEqual(got, want) {
				t.Fatalf("splitSetPairs(%q) = %q, the original splits it as %q", s, got, want)
			}
		}
		pairs := make([]string, 1+r.Intn(3))
		esc := make([]string, len(pairs))
		for j := range pairs {
			pairs[j] = randStr()
			esc[j] = escape(pairs[j], j < len(pairs)-1)
		}
		joined := strings.Join(esc, "|")
		if got := splitSetPairs(joined); !reflect.DeepEqual(got, pairs) {
			t.Fatalf("pairs %q escaped and joined as %q split into %q", pairs, joined, got)
		}
	}
}

// file:// values: JSON, else one YAML document, else the raw text.
func TestLoadFileValue(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, text, want string }{
		{"json.json", `{"b": [1, 2], "a": "x"}`, `{"b": [1, 2], "a": "x"}`},
		{"yaml.yaml", "dog: beagle\nbark: {quality: high}\n", `{"dog": "beagle", "bark": {"quality": "high"}}`},
		{"text.txt", "simple body contents\n", `"simple body contents"`},
		{"template.txt", "{{ hello(state.who) }} / {{ state.who }}\nline 2\n", `"{{ hello(state.who) }} / {{ state.who }}\nline 2\n"`},
		{"flowkey.txt", "{{ hello(state.who) }}\n", `"{{ hello(state.who) }}\n"`},
		{"listkey.txt", "{[a]: b}", `"{[a]: b}"`},
		{"twodocs.yaml", "a: 1\n---\nb: 2\n", `"a: 1\n---\nb: 2\n"`},
		{"trailing.yaml", "[1, 2] and more\n", `"[1, 2] and more\n"`},
		{"invalid.yaml", "a: [1, 2\n", `"a: [1, 2\n"`},
		{"empty.txt", "", `null`},
		{"comment.yaml", "# nothing\n", `null`},
		{"yaml11.yaml", "v: 1e3\nsha: 08\nflag: on\n", `{"v": "1e3", "sha": "08", "flag": true}`},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := loadFileValue(p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := document.MustJSON(v, document.PythonJSON); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
	missing := filepath.Join(dir, "missing.txt")
	if v, err := loadFileValue(missing); err != nil || v != "file://"+missing {
		t.Errorf("missing file: %v %v", v, err)
	}
}
