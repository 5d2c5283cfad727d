package reconciler

import (
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

func TestSetYAMLReadsJSONAsJSON(t *testing.T) {
	cases := map[string]string{
		`state.a={"n": 1e3, "s": "x"}`: `{"n": 1000, "s": "x"}`,
		`state.a=n: 1e3`:               `{"n": "1e3"}`, // YAML 1.1, as PyYAML reads it
		`state.a=[1, "two"]`:           `[1, "two"]`,
	}
	for in, want := range cases {
		sets, err := parseSetParams(nil, []string{in})
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := document.MustJSON(sets[0].Value, document.PythonJSON); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	if _, err := parseSetParams(nil, []string{"state.a={unclosed"}); err == nil {
		t.Fatal("malformed YAML was accepted")
	}
}
