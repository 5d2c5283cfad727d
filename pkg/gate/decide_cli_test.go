package gate_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/cli"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// TestCLIDecide runs `cicdstatemgr decide` through cli.Main against real Redis. (It
// lives here because pkg/cli's test files belong to others.)
func TestCLIDecide(t *testing.T) {
	ctx := testCtx(t)
	prefix := uniquePrefix(t)
	dir := t.TempDir()
	host, port, _ := strings.Cut(srv.Addr, ":")
	cfg := filepath.Join(dir, "config.yaml")
	sec := filepath.Join(dir, "secrets.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "cicdstatemgr:\n  datasources:\n    redis: {host: %s, port: %s, keyPrefix: %q, isPrimary: true}\n", host, port, prefix), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sec, fmt.Appendf(nil, "cicdstatemgr:\n  datasources:\n    redis: {username: %s, password: %q}\n", srv.Username, srv.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.New(store.Options{Addr: srv.Addr, Username: srv.Username, Password: srv.Password, KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.Put(ctx, "default/ctx1", document.NewMap(), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Put(ctx, "default/idle", document.NewMap(), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	s := gate.New(st)
	for _, k := range []string{"run-a", "run-b"} {
		p := pending(k, "default/ctx1", "deploy", "skip")
		p.AllowedUsers = []string{"UOPS1", "UDEV1"}
		if _, err := s.Register(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Register(ctx, pending("run-c", "default/ctx-c", "go")); err != nil {
		t.Fatal(err)
	}
	if err := s.Cancel(ctx, "run-c"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("USER", "UOPS1")
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		full := append([]string{"decide", "--config", cfg, "--secrets", sec}, args...)
		code := cli.Main(full, &out, &errb)
		return code, out.String(), errb.String()
	}
	// Errors first: nothing may change.
	fails := []struct {
		args   []string
		reason string
		msg    string
	}{
		{[]string{"--id", "ctx1", "--option", "maybe"}, "UnknownOption", `"deploy", "skip"`},
		{[]string{"--id", "ctx1", "--option", "deploy", "--by", "mallory"}, "NotAllowed", "mallory"},
		// allowed-users holds ids: a name never matches.
		{[]string{"--id", "ctx1", "--option", "deploy", "--by", "ops"}, "NotAllowed", "ops"},
		{[]string{"--id", "nope", "--option", "deploy"}, "ContextNotFound", "nope"},
		{[]string{"--id", "idle", "--option", "deploy"}, "NoWaitingGate", "idle"},
		{[]string{"--key", "nope", "--option", "deploy"}, "NoWaitingGate", "nope"},
		{[]string{"--id", "ctx-c", "--option", "go"}, "GateClosed", "no longer waiting"},
		{[]string{"--id", "ctx1"}, "InvalidParams", "--option"},
		{[]string{"--option", "deploy"}, "InvalidParams", "--id"},
	}
	for _, f := range fails {
		code, out, errs := run(f.args...)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if code == 0 || out != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], "cicdstatemgr: "+f.reason+": ") || !strings.Contains(errs, f.msg) {
			t.Errorf("%v: exit %d out %q err %q; want one %s line mentioning %q", f.args, code, out, errs, f.reason, f.msg)
		}
	}
	for _, k := range []string{"run-a", "run-b"} {
		if _, d, _ := s.Get(ctx, k); d != nil {
			t.Fatalf("%s decided by a failed command: %+v", k, d)
		}
	}
	// The latest pending choice of the context, chooser from $USER.
	if code, out, errs := run("--id", "ctx1", "--option", "deploy"); code != 0 || out != "choice=deploy chosen-by=UOPS1\n" {
		t.Fatalf("decide: exit %d out %q err %q", code, out, errs)
	}
	if _, d, _ := s.Get(ctx, "run-b"); d == nil || d.Choice != "deploy" || d.ChosenBy != "UOPS1" || d.Via != gate.ViaCLI {
		t.Fatalf("run-b decision %+v", d)
	}
	if _, d, _ := s.Get(ctx, "run-a"); d != nil {
		t.Fatalf("run-a (not the latest) was decided: %+v", d)
	}
	// Again: already decided, the first decision is named.
	code, out, errs := run("--id", "ctx1", "--option", "skip", "--by", "UDEV1")
	if code == 0 || out != "" || !strings.HasPrefix(errs, "cicdstatemgr: AlreadyDecided: ") || !strings.Contains(errs, "by UOPS1") {
		t.Fatalf("second decide: exit %d out %q err %q", code, out, errs)
	}
	// --key picks another one.
	if code, out, errs := run("--key", "run-a", "--option", "skip", "--by", "UDEV1"); code != 0 || out != "choice=skip chosen-by=UDEV1\n" {
		t.Fatalf("decide --key: exit %d out %q err %q", code, out, errs)
	}
}
