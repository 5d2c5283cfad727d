package document

import (
	"regexp"
	"testing"
)

// The regexps that pyBool, pyNull and numberStart replace or guard, kept as
// their specification.
var (
	pyBoolSpec = regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`)
	pyNullSpec = regexp.MustCompile(`^(?:~|null|Null|NULL|)$`)
)

func FuzzPlainScalarWordsAreTheRegexps(f *testing.F) {
	for _, s := range []string{"", "~", "null", "NULL", "nUll", "yes", "Yes", "yEs", "on", "OFF", "true\n", "1", "-1", ".5", "+.inf", ".nan", "0x1F", "1:20", "a", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := pyBool(s), pyBoolSpec.MatchString(s); got != want {
			t.Errorf("pyBool(%q) = %v, want %v", s, got, want)
		}
		if got, want := pyNull(s), pyNullSpec.MatchString(s); got != want {
			t.Errorf("pyNull(%q) = %v, want %v", s, got, want)
		}
		// numberStart only skips the number patterns for what they never match
		if !numberStart(s) && (pyFloatRE().MatchString(s) || pyIntRE().MatchString(s)) {
			t.Errorf("numberStart(%q) is false but %q is a number", s, s)
		}
	})
}
