package main

import (
	"context"
	"io"
	"reflect"
	"strings"
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

// TestParseHistoryArgs: context history takes --path and --limit.
func TestParseHistoryArgs(t *testing.T) {
	a, err := parseArgs([]string{"context", "history", "app-1", "--path", "state.version", "--limit=3", "-n", "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.pos, []string{"context", "history", "app-1"}) || a.get("path") != "state.version" || a.get("limit") != "3" || a.get("namespace") != "team-a" {
		t.Fatalf("parsed %+v", a)
	}
	if err := run(context.Background(), []string{"context", "history"}, io.Discard); err == nil || !strings.Contains(err.Error(), "context history ID") {
		t.Fatalf("context history without an id: %v", err)
	}
}
