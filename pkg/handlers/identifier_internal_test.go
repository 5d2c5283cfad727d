package handlers

import (
	"regexp"
	"testing"
)

// identifierRE is isIdentifier's specification (the regexp it replaces).
var identifierRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func FuzzIsIdentifierIsTheRegexp(f *testing.F) {
	for _, s := range []string{"", "a", "_", "9", "a9", "_9_", "a-b", "a b", "é", "a\n", "Zz_09", "x\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isIdentifier(s), identifierRE.MatchString(s); got != want {
			t.Errorf("isIdentifier(%q) = %v, want %v", s, got, want)
		}
	})
}
