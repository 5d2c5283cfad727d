package cli_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/cli"
)

// TestMigrateAndNamespaces: contexts of the version before namespaces become
// reachable in the namespace `migrate` names, and the CLI's --namespace
// (default "default") keeps namespaces apart.
func TestMigrateAndNamespaces(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t, srv.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: srv.Username, Password: srv.Password})
	defer rdb.Close()
	ctx := context.Background()
	// Two contexts as the previous version stored them, one with a TTL.
	if err := rdb.Set(ctx, "cicdstatemgr:ctx:old-1", `{"state":{"v":"one"}}`, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "cicdstatemgr:ctx:old-2", `{"state":{"v":"two"}}`, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := e.run("--namespace", "team-a", "--id", "old-1", "--get", "state.v"); code == 0 || out != "" {
		t.Fatalf("an old context is visible before the migration: %d %q", code, out)
	}
	code, out, errs := e.sub("migrate", "--config", "config.yaml", "--secrets", "secrets.yaml", "--namespace", "team-a", "--id", "old-1", "--id", "nope")
	if code != 1 || out != "moved old-1\nmissing nope\n" || !strings.Contains(errs, "1 context(s) left") {
		t.Fatalf("migrate --id: exit %d out %q err %q", code, out, errs)
	}
	if got := e.mustRun("--namespace", "team-a", "--id", "old-1", "--get", "state.v"); got != "one\n" {
		t.Fatalf("after the migration: %q", got)
	}
	if ttl := rdb.TTL(ctx, "cicdstatemgr:{team-a/old-1}:ctx").Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("TTL not kept: %v", ttl)
	}
	// Every remaining one, with CICDSTATEMGR_NAMESPACE; a dry run first moves nothing.
	t.Setenv("CICDSTATEMGR_NAMESPACE", "team-b")
	if code, out, _ := e.sub("migrate", "--config", "config.yaml", "--secrets", "secrets.yaml", "--namespace", "team-b", "--dry-run"); code != 0 || out != "would-move old-2\n" {
		t.Fatalf("dry run: exit %d out %q", code, out)
	}
	if code, out, errs := e.sub("migrate", "--config", "config.yaml", "--secrets", "secrets.yaml", "--namespace", "team-b"); code != 0 || out != "moved old-2\n" {
		t.Fatalf("migrate: exit %d out %q err %q", code, out, errs)
	}
	if got := e.mustRun("--id", "old-2", "--get", "state.v"); got != "two\n" {
		t.Fatalf("CICDSTATEMGR_NAMESPACE: %q", got)
	}
	if code, out, errs := e.sub("migrate", "--config", "config.yaml", "--secrets", "secrets.yaml"); code == 0 || out != "" || !strings.Contains(errs, "--namespace") {
		t.Fatalf("migrate without --namespace: exit %d out %q err %q", code, out, errs)
	}
	// The same id in two namespaces: two contexts; the default namespace is "default".
	t.Setenv("CICDSTATEMGR_NAMESPACE", "")
	e.mustRun("--init-new", "same", "--init-app-config-file", "app.yaml", "--set", "state.who=default")
	e.mustRun("--namespace", "team-c", "--init-new", "same", "--init-app-config-file", "app.yaml", "--set", "state.who=team-c")
	for ns, want := range map[string]string{"default": "default", "team-c": "team-c"} {
		if got := e.mustRun("--namespace", ns, "--id", "same", "--get", "state.who"); got != want+"\n" {
			t.Fatalf("%s: %q", ns, got)
		}
	}
	if code, _, errs := e.run("--namespace", "Team_C", "--id", "same", "--get", "state.who"); code == 0 || !strings.Contains(errs, "InvalidParams") {
		t.Fatalf("a malformed namespace: %d %q", code, errs)
	}
}

// sub runs a subcommand (its name first, then its own flags) in e's folder.
func (e *env) sub(args ...string) (int, string, string) {
	e.t.Helper()
	old, _ := os.Getwd()
	if err := os.Chdir(e.dir); err != nil {
		e.t.Fatal(err)
	}
	defer os.Chdir(old)
	var out, errb bytes.Buffer
	code := cli.Main(args, &out, &errb)
	return code, out.String(), errb.String()
}
