package main

import (
	"reflect"
	"testing"
)

// TestParseArgs: flags anywhere, as with kubectl; unknown flags refused.
func TestParseArgs(t *testing.T) {
	a, err := parseArgs([]string{"gates", "approve", "-n", "team-a", "release-1", "--option=ship", "-m", "lgtm", "--as-group", "g1", "--as-group", "g2", "-A"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.pos, []string{"gates", "approve", "release-1"}) || a.get("namespace") != "team-a" || a.get("option") != "ship" ||
		a.get("message") != "lgtm" || !reflect.DeepEqual(a.flags["as-group"], []string{"g1", "g2"}) || !a.has("all-namespaces") {
		t.Fatalf("parsed %+v", a)
	}
	if _, err := parseArgs([]string{"gates", "list", "--bogus"}); err == nil {
		t.Fatal("an unknown flag was accepted")
	}
	if _, err := parseArgs([]string{"gates", "approve", "x", "-m"}); err == nil {
		t.Fatal("a flag without its value was accepted")
	}
}
