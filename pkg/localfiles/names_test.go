package localfiles

import (
	"regexp"
	"testing"
)

// The hand-written matchers replace these regexps (kept here as their
// specification) without a change in behaviour.
var (
	unsafeNameRE  = regexp.MustCompile(`[^0-9A-Za-z._-]+`)
	nonVarCharsRE = regexp.MustCompile(`[^0-9a-zA-Z_]+`)
)

var nameSamples = []string{"", "a", "ctx-1", "my ctx/1", "a..b__c--d", "évé", "x\xff\xfey", "__", "  ", "a\tb\nc", "日本/語", "-._", "CICD_x.y"}

func TestSafeFileNameIsTheRegexp(t *testing.T) {
	for _, s := range nameSamples {
		if got, want := safeFileName(s), unsafeNameRE.ReplaceAllString(s, "_"); got != want {
			t.Errorf("safeFileName(%q) = %q, want %q", s, got, want)
		}
	}
}

func FuzzNamesAreTheRegexps(f *testing.F) {
	for _, s := range nameSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := safeFileName(s), unsafeNameRE.ReplaceAllString(s, "_"); got != want {
			t.Errorf("safeFileName(%q) = %q, want %q", s, got, want)
		}
		got := replaceRuns(s, func(c byte) bool { return isAlnum(c) || c == '_' })
		if want := nonVarCharsRE.ReplaceAllString(s, "_"); got != want {
			t.Errorf("variable name of %q = %q, want %q", s, got, want)
		}
	})
}
