package acceptance

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// controllerACL reads the controller's Redis ACL line from config/redis, the
// one the manifests install, with its user renamed and its password set.
func controllerACL(t *testing.T, user, password string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "redis", "500-redis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^\s*user cicdstatemgr on .*$`).FindString(string(raw))
	if line == "" {
		t.Fatal("config/redis/500-redis.yaml has no ACL line for the user cicdstatemgr")
	}
	line = strings.TrimSpace(line)
	line = strings.Replace(line, "user cicdstatemgr ", "user "+user+" ", 1)
	return strings.Replace(line, ">change-me", ">"+password, 1)
}

// TestControllerRedisACL: every store, gate and migration operation works as
// the least-privileged user of config/redis, and that user reaches nothing
// outside the key prefix and no other command.
func TestControllerRedisACL(t *testing.T) {
	srv := redistest.Start(t, redistest.WithConfig(controllerACL(t, "ctl", "ctl-pw")))
	ctx := context.Background()
	st, err := store.New(store.Options{Addr: srv.Addr, Username: "ctl", Password: "ctl-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// The engine's operations, exactly once.
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	eng := &engine.Engine{Store: st, Templates: tmpl.New(tmpl.Options{})}
	do := func(req engine.Request) *engine.Outcome {
		t.Helper()
		req.Namespace, req.Asker, req.Config = "team-a", "team-a", cfg
		out, err := eng.Do(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", req.Op, err)
		}
		return out
	}
	do(engine.Request{Op: engine.OpInit, ID: "app", AppConfig: []byte("cicd-contexts: {stage: {channel: c}}"), TTL: time.Hour, OpKey: "uid-1"})
	do(engine.Request{Op: engine.OpSet, ID: "app", Sets: []document.Assignment{{Path: "state.v", Value: "1"}}, OpKey: "uid-2"})
	do(engine.Request{Op: engine.OpSet, ID: "app", Sets: []document.Assignment{{Path: "state.v", Value: "1"}}, OpKey: "uid-2"})
	do(engine.Request{Op: engine.OpGet, ID: "app", Sets: []document.Assignment{{Path: "state.w", Value: "2"}}, Gets: []engine.GetSpec{{Name: "w", Expr: "state.w"}}, OpKey: "uid-3"})
	if out := do(engine.Request{Op: engine.OpGet, ID: "app", Gets: []engine.GetSpec{{Name: "v", Expr: "state.v"}}}); out.Results[0].Value != "1" {
		t.Fatalf("get: %v", out.Results)
	}
	// The history and the namespace's index (written after each write, best
	// effort: read them back to see that the ACL let them be written).
	if out := do(engine.Request{Op: engine.OpHistory, ID: "app"}); len(out.History) != 3 {
		t.Fatalf("history: %d entries, want 3 (init, set, get with a set)", len(out.History))
	}
	if cs, err := st.Contexts(ctx, "team-a", 0); err != nil || len(cs) != 1 || cs[0].ID != "app" {
		t.Fatalf("contexts: %v %v", cs, err)
	}
	if err := srv.Client().ZAdd(ctx, st.ContextsKey("team-a"), redis.Z{Score: 1, Member: "gone"}).Err(); err != nil {
		t.Fatal(err)
	}
	if cs, err := st.Contexts(ctx, "team-a", 0); err != nil || len(cs) != 1 {
		t.Fatalf("contexts after pruning: %v %v", cs, err)
	}
	if n, err := srv.Client().ZCard(ctx, st.ContextsKey("team-a")).Result(); err != nil || n != 1 {
		t.Fatalf("the index was not pruned: %d %v", n, err)
	}
	if _, err := st.TTL(ctx, store.Ref("team-a", "app")); err != nil {
		t.Fatal(err)
	}
	if err := st.Expire(ctx, store.Ref("team-a", "app"), 0); err != nil {
		t.Fatal(err)
	}
	// The handlers' journal and claims.
	if _, _, err := st.SetOpResultNX(ctx, "uid-4/build/e/notify/default", []byte("intent")); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteOpResult(ctx, "uid-4/build/e/notify/default"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimAs(ctx, "c", "me", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ReleaseAs(ctx, "c", "me"); err != nil {
		t.Fatal(err)
	}

	// Approval gates: the Lua scripts and pub/sub.
	gates := gate.New(st)
	woken := make(chan string, 1)
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := gates.Subscribe(subCtx, func(key string) { woken <- key }); err != nil {
		t.Fatal(err)
	}
	if _, err := gates.Register(ctx, gate.Gate{Key: "uid-5", ContextID: store.Ref("team-a", "app"), Options: []gate.Option{{Value: "ship"}}}); err != nil {
		t.Fatal(err)
	}
	if err := gates.AttachSlackMessage(ctx, "uid-5", "C1", "1.2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := gates.Decide(ctx, gate.Lookup{SlackChannel: "C1", SlackTS: "1.2"}, gate.Decision{Choice: "ship", ChosenBy: "U1", Via: gate.ViaSlack}); err != nil {
		t.Fatal(err)
	}
	select {
	case k := <-woken:
		if k != "uid-5" {
			t.Fatalf("woken for %q", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no decision published")
	}
	if err := gates.Cancel(ctx, "uid-5"); err != nil {
		t.Fatal(err)
	}
	// The Slack endpoint's accept-once mark.
	if first, err := gates.MarkOnce(ctx, "slack:abc", time.Minute); err != nil || !first {
		t.Fatalf("MarkOnce: %v %v", first, err)
	}

	// Migration of the former layout.
	admin := srv.Client()
	if err := admin.Set(ctx, "cicdstatemgr:ctx:old", `{"state":{}}`, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if res, err := st.Migrate(ctx, "team-a", nil, false); err != nil || len(res.Moved) != 1 {
		t.Fatalf("migrate: %+v %v", res, err)
	}

	// Nothing else: other keys, other channels, other commands.
	ctl := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "ctl", Password: "ctl-pw"})
	defer ctl.Close()
	refused := map[string]error{
		"GET outside the prefix": ctl.Get(ctx, "other:key").Err(),
		"SET outside the prefix": ctl.Set(ctx, "other:key", "x", 0).Err(),
		"PUBLISH elsewhere":      ctl.Publish(ctx, "other-channel", "x").Err(),
		"FLUSHALL":               ctl.FlushAll(ctx).Err(),
		"CONFIG GET":             ctl.ConfigGet(ctx, "*").Err(),
		"KEYS":                   ctl.Keys(ctx, "*").Err(),
		"CLIENT LIST":            ctl.Do(ctx, "CLIENT", "LIST").Err(),
		"SHUTDOWN":               ctl.Do(ctx, "SHUTDOWN", "NOSAVE").Err(),
	}
	for what, err := range refused {
		if err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%s as the controller's user: %v (want NOPERM)", what, err)
		}
	}
	// Positive control: the same client reaches keys under the prefix.
	if err := ctl.Set(ctx, "cicdstatemgr:probe", "x", time.Minute).Err(); err != nil {
		t.Fatalf("the control write under the prefix was refused: %v", err)
	}
}
