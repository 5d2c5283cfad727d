package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/cli"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/localfiles"
)

type env struct {
	t   *testing.T
	dir string
}

func newEnv(t *testing.T, redisAddr string) *env {
	t.Helper()
	dir := t.TempDir()
	host, port, _ := strings.Cut(redisAddr, ":")
	write(t, dir, "config.yaml", fmt.Sprintf(`cicdstatemgr:
  datasources:
    redis: {host: %s, port: %s, isPrimary: true}
    jsonfile: {path: "out/{id}.json"}
    shellfile: {path: out/ctx.sh}
    idfile: {path: out/ctx.id}
`, host, port))
	write(t, dir, "secrets.yaml", "cicdstatemgr:\n  datasources:\n    redis: {username: cicdstatemgr, password: \"123$aBcZ\"}\n")
	write(t, dir, "app.yaml", "cicd-contexts:\n  stage:\n    channel: c\n")
	return &env{t: t, dir: dir}
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *env) run(args ...string) (int, string, string) {
	e.t.Helper()
	old, _ := os.Getwd()
	if err := os.Chdir(e.dir); err != nil {
		e.t.Fatal(err)
	}
	defer os.Chdir(old)
	var out, errb bytes.Buffer
	full := append([]string{"--config", "config.yaml", "--secrets", "secrets.yaml"}, args...)
	code := cli.Main(full, &out, &errb)
	return code, out.String(), errb.String()
}

func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	code, out, errs := e.run(args...)
	if code != 0 {
		e.t.Fatalf("%v: exit %d: %s", args, code, errs)
	}
	return out
}

func TestErrorsAreOneLineAndWriteNothing(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t, srv.Addr)
	e.mustRun("--init-new", "c1", "--init-app-config-file", "app.yaml", "--set", "state.s=text")
	before := e.mustRun("--id", "c1", "--get", "$")
	write(t, e.dir, "bad.yaml", "cicd-contexts: [unclosed")
	cases := []struct {
		name   string
		args   []string
		reason string
	}{
		{"unknown id", []string{"--id", "nope", "--set", "state.a=1"}, "ContextNotFound"},
		{"unknown id get", []string{"--id", "nope", "--get", "state"}, "ContextNotFound"},
		{"malformed app config", []string{"--init-new", "c1", "--init-app-config-file", "bad.yaml", "--set", "a=b"}, "InvalidAppConfig"},
		{"missing app config", []string{"--init-new", "c1", "--init-app-config-file", "missing.yaml", "--set", "a=b"}, "InvalidParams"},
		{"marker on non-list", []string{"--id", "c1", "--set", "state.x=1", "--set", "state.s[]=a"}, "InvalidParams"},
		{"template syntax error", []string{"--id", "c1", "--get", "state.s", "--tmpl-ctx-var", "x"}, "InvalidParams"},
		{"bad event", []string{"--id", "c1", "--handle-event", "noequals"}, "InvalidParams"},
		{"no id", []string{"--get", "state"}, "InvalidParams"},
	}
	for _, c := range cases {
		code, out, errs := e.run(c.args...)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if code == 0 || out != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], "cicdstatemgr: "+c.reason+": ") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want non-zero, no stdout, one line with %s", c.name, code, out, errs, c.reason)
		}
		if after := e.mustRun("--id", "c1", "--get", "$"); after != before {
			t.Errorf("%s: the document changed", c.name)
		}
	}
}

func TestTemplateErrorFailsGet(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t, srv.Addr)
	e.mustRun("--init-new", "c1", "--init-app-config-file", "app.yaml", "--set", "state.t={% if %}", "--set", "state.u={{ nope.x }}")
	for _, p := range []string{"state.t", "state.u"} {
		code, out, errs := e.run("--id", "c1", "--get", p)
		if code == 0 || out != "" || !strings.Contains(errs, "TemplateError") {
			t.Errorf("%s: exit %d out %q err %q", p, code, out, errs)
		}
	}
}

func TestRedisUnreachableFailsWithinSeconds(t *testing.T) {
	e := newEnv(t, "127.0.0.1:1")
	start := time.Now()
	code, out, errs := e.run("--id", "x", "--get", "state")
	if code == 0 || out != "" || !strings.Contains(errs, "StoreUnavailable") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Fatalf("exit %d out %q err %q", code, out, errs)
	}
	if strings.Contains(errs, "123$aBcZ") {
		t.Fatal("the password leaked into the error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestLocalFilesKeyedByIDAndSafelyQuoted(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t, srv.Addr)
	evil := `it's $(touch pwned) "q" ` + "`x`"
	e.mustRun("--init-new", "a:b", "--init-app-config-file", "app.yaml", "--set", "state.v="+evil)
	if _, err := os.Stat(filepath.Join(e.dir, "out", "a_b.json")); err != nil {
		t.Fatalf("json file keyed by id: %v", err)
	}
	id, _ := os.ReadFile(filepath.Join(e.dir, "out", "ctx.id"))
	if string(id) != "a:b" {
		t.Fatalf("id file = %q", id)
	}
	sh := filepath.Join(e.dir, "out", "ctx.sh")
	got, err := runBash(e.dir, `source "$1"; printf %s "$CICD_state__v"`, sh)
	if err != nil || got != evil {
		t.Fatalf("sourced %q (%v), want %q", got, err, evil)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "pwned")); err == nil {
		t.Fatal("sourcing the shell file ran a command")
	}
	if q := localfiles.ShellQuote("a'b"); q != `'a'\''b'` {
		t.Fatalf("ShellQuote = %s", q)
	}
}

func TestGetWholeDocumentAsJSONAndEnvVars(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t, srv.Addr)
	t.Setenv(cli.EnvContextDataID, "envid")
	t.Setenv(cli.EnvAppConfigPath, "app.yaml")
	if out := e.mustRun("--init-new", "envid", "--set", "state.k=v"); out != "envid\n" {
		t.Fatalf("init stdout %q", out)
	}
	out := e.mustRun("--get", "$")
	if !strings.HasPrefix(out, `{"channel": "c", "appPipelinesConfig": `) || !strings.Contains(out, `"state": {"cicdContextDataId": "envid", "cicdContextName": "stage", "k": "v"}`) {
		t.Fatalf("--get $ = %s", out)
	}
	if out := e.mustRun("--set", "state.a=1|state.b=2"); out != "" {
		t.Fatalf("set printed %q", out)
	}
	if out := e.mustRun("--get", "state.b"); out != "2\n" {
		t.Fatalf("pipe-split set: %q", out)
	}
}
