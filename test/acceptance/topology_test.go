package acceptance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// The Redis topologies (issue 13): the engine's operations, exactly once, the
// handlers' journal, approval gates and their pub/sub wake-ups work unchanged on a
// Redis Cluster (3 primaries) and through Redis Sentinel (1 primary, 1 replica, 3
// sentinels), all real processes on loopback; and a Sentinel failover in the middle
// of 200 sets loses no acknowledged write and applies none twice.

// handlersTestdata is the handlers' basics fixture (config, secrets, app, bases).
var handlersTestdata = filepath.Join("..", "..", "pkg", "handlers", "testdata", "basics")

func readHandlersFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(handlersTestdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// topologyEngine is an engine over st with the basics configuration pointed at a
// local echo server.
type topologyEngine struct {
	t    *testing.T
	st   *store.Store
	eng  *engine.Engine
	cfg  *config.Config
	echo *EchoServer
}

func newTopologyEngine(t *testing.T, o store.Options) *topologyEngine {
	t.Helper()
	st, err := store.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	echo, err := StartEcho()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(echo.Close)
	text := strings.ReplaceAll(readHandlersFixture(t, "config.yaml"), "127.0.0.1:18080", echo.Addr)
	cfg, err := config.Parse([]byte(text), []byte(readHandlersFixture(t, "secrets.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	templates := tmpl.New(tmpl.Options{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	runner := handlers.NewRunner(st, templates, log, handlers.WithHTTPClient(&httpclient.Client{
		Timeout: 3 * time.Second, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	}), handlers.WithDocumentInHeaders(), handlers.WithGates(gate.New(st)))
	return &topologyEngine{t: t, st: st, cfg: cfg, echo: echo,
		eng: &engine.Engine{Store: st, Templates: templates, Handlers: runner, Log: log}}
}

func (e *topologyEngine) do(ctx context.Context, req engine.Request) (*engine.Outcome, error) {
	req.Namespace, req.Config = "team-a", e.cfg
	if req.Op == engine.OpInit {
		req.AppConfig = []byte(readHandlersFixture(e.t, "app.yaml"))
		req.Bases = func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(handlersTestdata, "bases", name)) }
	}
	return e.eng.Do(ctx, req)
}

func (e *topologyEngine) mustDo(ctx context.Context, req engine.Request) *engine.Outcome {
	e.t.Helper()
	out, err := e.do(ctx, req)
	if err != nil {
		e.t.Fatalf("%s %s (op key %q): %v", req.Op, req.ID, req.OpKey, err)
	}
	return out
}

// engineOps runs init, set, get and handle-event (a journaled HTTP call) on contexts
// spread over the store's shards, each op twice with its op key (the second
// replays), and an approval gate decided through a Slack lookup and woken through
// pub/sub.
func engineOps(t *testing.T, e *topologyEngine) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sets := func(kv ...string) []document.Assignment {
		var out []document.Assignment
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, document.Assignment{Path: kv[i], Value: kv[i+1]})
		}
		return out
	}
	for i := 0; i < 6; i++ {
		id := fmt.Sprintf("app-%d", i)
		for attempt := 0; attempt < 2; attempt++ {
			replay := attempt == 1
			if out := e.mustDo(ctx, engine.Request{Op: engine.OpInit, ID: id, OpKey: id + "-init", TTL: time.Hour,
				Sets: sets("state.key1", "value1")}); out.Replayed != replay {
				t.Fatalf("init %s attempt %d: replayed %v", id, attempt, out.Replayed)
			}
			if out := e.mustDo(ctx, engine.Request{Op: engine.OpSet, ID: id, OpKey: id + "-set",
				Sets: sets("state.items[]", "one", "state.key1", "value2")}); out.Replayed != replay {
				t.Fatalf("set %s attempt %d: replayed %v", id, attempt, out.Replayed)
			}
			out := e.mustDo(ctx, engine.Request{Op: engine.OpHandleEvent, ID: id, OpKey: id + "-event",
				Event: &engine.Event{Pipeline: "build", Name: "testEvent"}})
			if out.Replayed != replay || !strings.Contains(out.Handled, `"status":"sent","code":200`) {
				t.Fatalf("handle-event %s attempt %d: replayed %v handled %s", id, attempt, out.Replayed, out.Handled)
			}
		}
		if reqs := e.echo.Take(); len(reqs) != 1 || !strings.Contains(reqs[0].Body, "testEventFired") {
			t.Fatalf("%s: the endpoint got %d calls, want exactly 1 (the journal replays the second): %+v", id, len(reqs), reqs)
		}
		out := e.mustDo(ctx, engine.Request{Op: engine.OpGet, ID: id, Gets: []engine.GetSpec{
			{Name: "items", Expr: "state.items"}, {Name: "key1", Expr: "state.key1"}, {Name: "rid", Expr: "state.lastPostedDataRandomId"}}})
		if v, _ := out.Result("items"); v != `["one"]` {
			t.Fatalf("get %s: items %q, want [\"one\"] (the set applied once)", id, v)
		}
		if v, _ := out.Result("key1"); v != "value2" {
			t.Fatalf("get %s: key1 %q", id, v)
		}
		if v, _ := out.Result("rid"); v == "" {
			t.Fatalf("get %s: no captured response of the handler", id)
		}
	}

	// An approval gate: registered, posted to Slack, decided through the Slack
	// lookup (index keys in other slots than the record), the decision published to
	// a subscriber, and a second decision refused.
	gates := gate.New(e.st)
	woken := make(chan string, 4)
	subCtx, stop := context.WithCancel(ctx)
	defer stop()
	if err := gates.Subscribe(subCtx, func(key string) { woken <- key }); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		key := fmt.Sprintf("uid-gate-%d", i)
		ref := store.Ref("team-a", fmt.Sprintf("app-%d", i))
		g, err := gates.Register(ctx, gate.Gate{Key: key, ContextID: ref, Options: []gate.Option{{Value: "ship"}, {Value: "stop"}}})
		if err != nil {
			t.Fatal(err)
		}
		if again, err := gates.Register(ctx, g); err != nil || again.Key != key {
			t.Fatalf("register again: %+v %v", again, err)
		}
		if err := gates.AttachSlackMessage(ctx, key, "C1", fmt.Sprintf("1.%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := gates.AttachSlackMessage(ctx, key, "C1", fmt.Sprintf("2.%d", i)); err != nil { // a repost moves the index
			t.Fatal(err)
		}
		if _, _, err := gates.Decide(ctx, gate.Lookup{SlackChannel: "C1", SlackTS: fmt.Sprintf("1.%d", i)}, gate.Decision{Choice: "ship", ChosenBy: "U1"}); !errors.Is(err, gate.ErrNotFound) {
			t.Fatalf("decide through the old message: %v, want not found", err)
		}
		lookup := gate.Lookup{SlackChannel: "C1", SlackTS: fmt.Sprintf("2.%d", i)}
		if i == 2 {
			lookup = gate.Lookup{ContextID: ref}
		}
		if _, d, err := gates.Decide(ctx, lookup, gate.Decision{Choice: "ship", ChosenBy: "U1", Via: gate.ViaSlack}); err != nil || d.Choice != "ship" {
			t.Fatalf("decide %s: %+v %v", key, d, err)
		}
		select {
		case k := <-woken:
			if k != key {
				t.Fatalf("woken for %q, want %q", k, key)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the decision of %s was not published to the subscriber", key)
		}
		if _, first, err := gates.Decide(ctx, gate.Lookup{Key: key}, gate.Decision{Choice: "stop", ChosenBy: "U2"}); !errors.Is(err, gate.ErrAlreadyDecided) || first.Choice != "ship" {
			t.Fatalf("second decision: %+v %v", first, err)
		}
		if err := gates.Cancel(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if first, err := gates.MarkOnce(ctx, "slack:abc", time.Minute); err != nil || !first {
		t.Fatalf("MarkOnce: %v %v", first, err)
	}
	if first, err := gates.MarkOnce(ctx, "slack:abc", time.Minute); err != nil || first {
		t.Fatalf("MarkOnce again: %v %v", first, err)
	}
}

// clusterACLExtra is what a Cluster needs beyond the controller's ACL of
// config/redis (docs/design.md lists it): the cluster client's slot map and
// command table.
const clusterACLExtra = " +cluster|slots +command"

func TestTopologyCluster(t *testing.T) {
	// As the controller's least-privileged user (the ACL of config/redis plus what
	// the docs say a Cluster needs), so the documented command list is complete.
	cl := redistest.StartCluster(t, redistest.WithConfig(controllerACL(t, "ctl", "ctl-pw")+clusterACLExtra))
	e := newTopologyEngine(t, store.Options{ClusterAddrs: cl.Addrs, Username: "ctl", Password: "ctl-pw"})
	engineOps(t, e)
	// The contexts were spread over more than one primary.
	ctx := context.Background()
	used := 0
	for _, n := range cl.Nodes {
		if n.Client().DBSize(ctx).Val() > 0 {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("keys on %d of 3 primaries: the test did not cross shards", used)
	}
}

func TestTopologySentinel(t *testing.T) {
	// The data nodes have the controller's ACL user of config/redis, unchanged: the
	// failover client and WAIT need nothing more.
	set := redistest.StartSentinel(t, redistest.WithConfig(controllerACL(t, "ctl", "ctl-pw")))
	o := sentinelOptions(set)
	o.Username, o.Password = "ctl", "ctl-pw"
	e := newTopologyEngine(t, o)
	if e.st.ReplicaAcks() != 1 {
		t.Fatalf("replica acks %d, want 1 by default with Sentinel", e.st.ReplicaAcks())
	}
	engineOps(t, e)
}

func sentinelOptions(set *redistest.SentinelSet) store.Options {
	return store.Options{
		SentinelMasterName: set.MasterName, SentinelAddrs: set.SentinelAddrs,
		SentinelUsername: set.Username, SentinelPassword: set.Password,
		Username: set.Username, Password: set.Password,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		ReplicaAckTimeout: 500 * time.Millisecond,
	}
}

// TestSentinelFailoverExactlyOnce: 200 sequential sets, each appending a distinct
// item (an append applied twice shows twice); the primary is SIGKILLed after the
// 100th while the next ones run. Every op is retried with its op key while it fails
// transiently (it must never fail otherwise). After the failover, and the old
// primary's return as a replica (so that WAIT 1 can be met again), every op has
// succeeded, and the document holds each item exactly once.
func TestSentinelFailoverExactlyOnce(t *testing.T) {
	set := redistest.StartSentinel(t)
	e := newTopologyEngine(t, sentinelOptions(set))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	e.mustDo(ctx, engine.Request{Op: engine.OpInit, ID: "fo", OpKey: "fo-init"})
	// A gate waiter subscribed before the failover is woken by a decision after it
	// (go-redis resubscribes on the promoted primary).
	gates := gate.New(e.st)
	woken := make(chan string, 1)
	if err := gates.Subscribe(ctx, func(key string) { woken <- key }); err != nil {
		t.Fatal(err)
	}
	if _, err := gates.Register(ctx, gate.Gate{Key: "uid-fo", ContextID: store.Ref("team-a", "fo"), Options: []gate.Option{{Value: "ship"}}}); err != nil {
		t.Fatal(err)
	}

	const total, killAt = 200, 100
	var transient atomic.Int64
	failover := make(chan error, 1)
	var newPrimary string
	for i := 0; i < total; i++ {
		if i == killAt {
			go func() {
				old := set.Primary
				old.Kill()
				addr, err := set.WaitFailover(ctx, old.Addr)
				if err == nil {
					newPrimary = addr
					// The killed primary comes back (as a pod would) and the sentinels
					// make it a replica of the promoted one.
					err = old.Restart()
				}
				failover <- err
			}()
		}
		req := engine.Request{Op: engine.OpSet, ID: "fo", OpKey: fmt.Sprintf("fo-set-%d", i),
			Sets: []document.Assignment{{Path: "state.items[]", Value: fmt.Sprintf("item-%d", i)}}}
		for {
			_, err := e.do(ctx, req)
			if err == nil {
				break
			}
			if ee := engine.AsError(err, ""); !ee.Transient || !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("set %d failed with a non-transient error: %v", i, err)
			}
			transient.Add(1)
			if ctx.Err() != nil {
				t.Fatalf("set %d did not succeed before the deadline: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := <-failover; err != nil {
		t.Fatalf("failover: %v", err)
	}
	if newPrimary != set.Replica.Addr {
		t.Fatalf("the sentinels promoted %s, want the replica %s", newPrimary, set.Replica.Addr)
	}
	if transient.Load() == 0 {
		t.Fatal("no op failed transiently: the kill did not hit the ops in flight")
	}
	t.Logf("transient failures retried during the failover: %d", transient.Load())

	out := e.mustDo(ctx, engine.Request{Op: engine.OpGet, ID: "fo", Gets: []engine.GetSpec{{Name: "items", Expr: "state.items"}}})
	raw, _ := out.Result("items")
	v, err := document.ParseJSON([]byte(raw))
	if err != nil {
		t.Fatalf("items: %v (%s)", err, raw)
	}
	items, _ := v.([]any)
	seen := map[string]int{}
	for _, it := range items {
		seen[fmt.Sprint(it)]++
	}
	for i := 0; i < total; i++ {
		if n := seen[fmt.Sprintf("item-%d", i)]; n != 1 {
			t.Errorf("item-%d is stored %d times, want exactly once", i, n)
		}
	}
	if len(items) != total {
		t.Fatalf("%d items stored, want %d", len(items), total)
	}
	if _, _, err := gates.Decide(ctx, gate.Lookup{ContextID: store.Ref("team-a", "fo")}, gate.Decision{Choice: "ship", ChosenBy: "U1"}); err != nil {
		t.Fatalf("decide the gate registered before the failover: %v", err)
	}
	select {
	case k := <-woken:
		if k != "uid-fo" {
			t.Fatalf("woken for %q", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription made before the failover did not deliver a decision made after it")
	}
	// Every op record survived too: a repeat of any op replays.
	for _, i := range []int{0, killAt - 1, killAt, killAt + 1, total - 1} {
		out := e.mustDo(ctx, engine.Request{Op: engine.OpSet, ID: "fo", OpKey: fmt.Sprintf("fo-set-%d", i),
			Sets: []document.Assignment{{Path: "state.items[]", Value: fmt.Sprintf("item-%d", i)}}})
		if !out.Replayed {
			t.Errorf("set %d repeated after the failover applied again instead of replaying", i)
		}
	}
}

// TestReplicaAcksSingle: minReplicaAcks on a single Redis without replicas: WAIT is
// allowed by the controller's ACL (config/redis) and, with nobody to acknowledge, the
// op fails transiently instead of being reported done; with the default (0) it
// succeeds.
func TestReplicaAcksSingle(t *testing.T) {
	srv := redistest.Start(t, redistest.WithConfig(controllerACL(t, "ctl", "ctl-pw")))
	one := 1
	e := newTopologyEngine(t, store.Options{Addr: srv.Addr, Username: "ctl", Password: "ctl-pw", MinReplicaAcks: &one, ReplicaAckTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	_, err := e.do(ctx, engine.Request{Op: engine.OpInit, ID: "app", OpKey: "uid-1"})
	if ee := engine.AsError(err, ""); err == nil || !ee.Transient || !strings.Contains(err.Error(), "0 of 1 required replica acknowledgements") {
		t.Fatalf("init with minReplicaAcks 1 and no replica: %v, want a transient WAIT failure", err)
	}
	e0 := newTopologyEngine(t, store.Options{Addr: srv.Addr, Username: "ctl", Password: "ctl-pw"})
	if out := e0.mustDo(ctx, engine.Request{Op: engine.OpInit, ID: "app", OpKey: "uid-1"}); !out.Replayed {
		t.Fatal("the init whose WAIT fell short was not recorded on the primary (its retry should replay)")
	}
}

// TestTopologyCLI: the one CLI binary against a Redis Cluster and through Sentinel,
// chosen by the datasources.redis block of config.yaml only: init, set, get and
// handle-event (an HTTP call) work unchanged.
func TestTopologyCLI(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.WithUser("cicdstatemgr", "123$aBcZ"))
	set := redistest.StartSentinel(t, redistest.WithUser("cicdstatemgr", "123$aBcZ"))
	quoted := func(addrs []string) string { return `["` + strings.Join(addrs, `", "`) + `"]` }
	for name, block := range map[string]string{
		"cluster":  "      cluster: {addresses: " + quoted(cl.Addrs) + "}\n",
		"sentinel": "      sentinel: {masterName: " + set.MasterName + ", addresses: " + quoted(set.SentinelAddrs) + "}\n",
	} {
		t.Run(name, func(t *testing.T) {
			echo, err := StartEcho()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(echo.Close)
			h := &harness{t: t, dir: t.TempDir(), echo: echo}
			h.copyFixtures(filepath.Join("testdata", "basics"), 0)
			cfgPath := filepath.Join(h.dir, "config.yaml")
			b, err := os.ReadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			single := "      host: 127.0.0.1\n      port: 0\n"
			if !strings.Contains(string(b), single) {
				t.Fatalf("the fixture config.yaml has no %q", single)
			}
			h.write("config.yaml", strings.Replace(string(b), single, block, 1))
			if name == "sentinel" {
				sec, err := os.ReadFile(filepath.Join(h.dir, "secrets.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				h.write("secrets.yaml", strings.Replace(string(sec), "    redis:\n", "    redis:\n      sentinel: {username: cicdstatemgr, password: 123$aBcZ}\n", 1))
			}
			h.initContext("cli-" + name)
			h.mustCLI("--id", "cli-"+name, "--set", "state.items[]=one")
			if res := h.mustCLI("--id", "cli-"+name, "--handle-event", "build=testEvent"); len(res.http) != 1 {
				t.Fatalf("handle-event made %d HTTP calls, want 1", len(res.http))
			}
			if v, _ := h.at("cli-"+name, "state.who"); v != "world" {
				t.Fatalf("state.who = %v", v)
			}
			if v, _ := h.at("cli-"+name, "state.items"); fmt.Sprint(v) != "[one]" {
				t.Fatalf("state.items = %v", v)
			}
			if v, _ := h.at("cli-"+name, "state.lastPostedDataRandomId"); v == nil {
				t.Fatal("the handler's capture was not stored")
			}
		})
	}
	// The contexts are really in the cluster (and not in a Redis on the default port).
	n := 0
	for _, node := range cl.Nodes {
		n += int(node.Client().DBSize(context.Background()).Val())
	}
	if n == 0 {
		t.Fatal("no keys in the cluster")
	}
}
