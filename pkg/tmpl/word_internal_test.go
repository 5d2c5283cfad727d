package tmpl

import (
	"regexp"
	"testing"
)

// wordRE is isWord's specification (the regexp it replaces).
var wordRE = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)

func FuzzIsWordIsTheRegexp(f *testing.F) {
	for _, s := range []string{"", "a", "_", "9", "set-values", "a b", "é", "a\n", "Zz_09", "x\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isWord(s), wordRE.MatchString(s); got != want {
			t.Errorf("isWord(%q) = %v, want %v", s, got, want)
		}
	})
}
