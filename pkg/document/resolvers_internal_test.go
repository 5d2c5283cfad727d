package document

import (
	"regexp"
	"testing"
)

// PyYAML's implicit resolvers as regexps (resolver.py), the specification of
// the hand-written isPyBool, isPyNull, isPyFloat and isPyInt.
var (
	pyBoolSpec  = regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`)
	pyFloatSpec = regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)
	pyIntSpec   = regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)
	pyNullSpec  = regexp.MustCompile(`^(?:~|null|Null|NULL|)$`)
)

var resolverSamples = []string{
	"", "~", "null", "NULL", "nUll", "yes", "Yes", "yEs", "on", "OFF", "true\n",
	"0", "-0", "+", "-", "1", "-1", "+12_3", "012", "08", "0_7", "0b", "0b101", "-0b1_0", "0b2",
	"0x", "0x1F", "0X1F", "+0xa_f", "0xg", "1e3", "1.5e+3", "1.5e3", "1.e-10", "1.5E+", ".5", "._5",
	".5e-1", "-.5", "1.", "1_.2_", "+.inf", "-.Inf", ".INF", ".nan", "-.nan", ".NaN", ".Nan",
	"1:20", "1:60", "1:6", "190:20:30", "1:20.5", "-1:2:3.", "1:", ":1", "1::2", "1:2:", "0:20",
	"01:20", "1:20.5.", "1.2.3", "127.0.0.1", "16399", "a", " 1", "1 ", "1\n", "١",
}

func TestResolversAreTheRegexps(t *testing.T) {
	for _, s := range resolverSamples {
		checkResolvers(t, s)
	}
}

func FuzzResolversAreTheRegexps(f *testing.F) {
	for _, s := range resolverSamples {
		f.Add(s)
	}
	f.Fuzz(checkResolvers)
}

func checkResolvers(t *testing.T, s string) {
	for _, c := range []struct {
		name string
		got  func(string) bool
		spec *regexp.Regexp
	}{
		{"isPyBool", isPyBool, pyBoolSpec}, {"isPyNull", isPyNull, pyNullSpec},
		{"isPyFloat", isPyFloat, pyFloatSpec}, {"isPyInt", isPyInt, pyIntSpec},
	} {
		if got, want := c.got(s), c.spec.MatchString(s); got != want {
			t.Errorf("%s(%q) = %v, want %v", c.name, s, got, want)
		}
	}
}
