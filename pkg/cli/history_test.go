package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/user"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/cli"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
)

// history runs `cicdstatemgr history` in the env's directory.
func (e *env) history(args ...string) (int, string, string) {
	e.t.Helper()
	old, _ := os.Getwd()
	if err := os.Chdir(e.dir); err != nil {
		e.t.Fatal(err)
	}
	defer os.Chdir(old)
	var out, errb bytes.Buffer
	code := cli.Main(append([]string{"history", "--config", "config.yaml", "--secrets", "secrets.yaml"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func (e *env) entries(args ...string) []history.Entry {
	e.t.Helper()
	code, out, errs := e.history(args...)
	var h []history.Entry
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil {
		e.t.Fatalf("history %v: exit %d, stdout %q, stderr %q", args, code, out, errs)
	}
	return h
}

// TestHistoryCommand: the CLI's writes are recorded as the OS user's (via
// cli), secrets redacted; `history` prints them newest first as JSON,
// filtered by --path and --limit; errors are one line on stderr and exit 1.
func TestHistoryCommand(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t, srv.Addr)
	e.mustRun("--init-new", "c1", "--init-app-config-file", "app.yaml", "--set", "state.v=1")
	e.mustRun("--id", "c1", "--set", "state.v=2")
	e.mustRun("--id", "c1", "--set", "state.token=pw:123$aBcZ") // the Redis password of secrets.yaml
	e.mustRun("--id", "c1", "--get", "state.v")                 // a read records nothing

	h := e.entries("--id", "c1")
	var ops []string
	for _, en := range h {
		ops = append(ops, en.Op)
	}
	if strings.Join(ops, ",") != "set,set,init" {
		t.Fatalf("ops: %v", ops)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range h {
		if en.Who != (history.Who{User: me.Username, Via: "cli"}) {
			t.Fatalf("who: %+v, want user %q via cli", en.Who, me.Username)
		}
	}
	if h[0].Changes[0] != (history.Change{Path: "state.token", New: `"pw:[REDACTED]"`}) {
		t.Fatalf("secret entry: %+v", h[0].Changes)
	}
	if h[1].Changes[0] != (history.Change{Path: "state.v", Old: `"1"`, New: `"2"`}) {
		t.Fatalf("set entry: %+v", h[1].Changes)
	}
	if h := e.entries("--id", "c1", "--path", "state.v"); len(h) != 2 || h[0].Op != "set" || h[1].Op != "init" {
		t.Fatalf("--path state.v: %+v", h)
	}
	if h := e.entries("--id", "c1", "--limit", "1"); len(h) != 1 || h[0].Changes[0].Path != "state.token" {
		t.Fatalf("--limit 1: %+v", h)
	}

	for _, c := range []struct {
		args   []string
		reason string
	}{
		{[]string{"--id", "nope"}, "ContextNotFound"},
		{[]string{"--namespace", "other", "--id", "c1"}, "ContextNotFound"},
		{nil, "InvalidParams"},
		{[]string{"--id", "c1", "--limit", "-1"}, "InvalidParams"},
		{[]string{"--id", "c1", "--path", "state..v"}, "InvalidParams"},
	} {
		code, out, errs := e.history(c.args...)
		if code != 1 || out != "" || !strings.HasPrefix(errs, "cicdstatemgr: "+c.reason+": ") || strings.Count(errs, "\n") != 1 {
			t.Errorf("history %v: exit %d, stdout %q, stderr %q; want exit 1 and one %s line", c.args, code, out, errs, c.reason)
		}
	}
}
