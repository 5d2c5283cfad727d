package store_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

func intp(n int) *int { return &n }

func TestTopologyOptions(t *testing.T) {
	for _, c := range []struct {
		o    store.Options
		want string
	}{
		{store.Options{SentinelAddrs: []string{"s:1"}}, "needs the master name"},
		{store.Options{SentinelMasterName: "m"}, "at least one sentinel address"},
		{store.Options{SentinelMasterName: "m", SentinelAddrs: []string{"s1"}}, `invalid sentinel address "s1"`},
		{store.Options{SentinelMasterName: "m", SentinelAddrs: []string{"s:1", "s:1"}}, "given twice"},
		{store.Options{SentinelMasterName: "m", SentinelAddrs: []string{"s:1"}, ClusterAddrs: []string{"c:1"}}, "choose one topology"},
		{store.Options{ClusterAddrs: []string{"c:1"}, DB: 1}, "only db 0"},
		{store.Options{ClusterAddrs: []string{"c"}}, `invalid cluster address "c"`},
		{store.Options{MinReplicaAcks: intp(-1)}, "negative"},
		{store.Options{MinReplicaAcks: intp(1), ReplicaAckTimeout: 5 * time.Second}, "shorter than the read timeout"},
	} {
		if _, err := store.New(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
	for _, c := range []struct {
		o    store.Options
		topo store.Topology
		acks int
	}{
		{store.Options{}, store.Single, 0},
		{store.Options{MinReplicaAcks: intp(1)}, store.Single, 1},
		{store.Options{SentinelMasterName: "m", SentinelAddrs: []string{"s:1"}}, store.Sentinel, 1},
		{store.Options{SentinelMasterName: "m", SentinelAddrs: []string{"s:1"}, MinReplicaAcks: intp(0)}, store.Sentinel, 0},
		{store.Options{ClusterAddrs: []string{"c:1", "c:2"}}, store.Cluster, 0},
	} {
		st, err := store.New(c.o)
		if err != nil {
			t.Fatal(err)
		}
		if st.Topology() != c.topo || st.ReplicaAcks() != c.acks {
			t.Errorf("%+v: topology %s, acks %d; want %s, %d", c.o, st.Topology(), st.ReplicaAcks(), c.topo, c.acks)
		}
		_ = st.Close()
	}
}

// addItem is an UpdateFunc that appends item to the list at key items: applied
// twice, the item shows twice.
func addItem(item string) store.UpdateFunc {
	return func(doc *document.Map) (bool, []byte, error) {
		v, _ := doc.Get("items")
		l, _ := v.([]any)
		doc.Set("items", append(l, item))
		return true, []byte(item), nil
	}
}

func listItems(t *testing.T, st *store.Store, ref string) []any {
	t.Helper()
	doc, err := st.Get(testCtx(t, 10*time.Second), ref)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := doc.Get("items")
	l, _ := v.([]any)
	return l
}

// TestClusterOps: every store operation on contexts spread over the three primaries
// of a Redis Cluster: no CROSSSLOT, exactly-once replays.
func TestClusterOps(t *testing.T) {
	cl := redistest.StartCluster(t)
	o := store.Options{ClusterAddrs: cl.Addrs, Username: cl.Username, Password: cl.Password, KeyPrefix: "cl"}
	st := newStore(t, o)
	ctx := testCtx(t, 60*time.Second)
	if err := st.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 24
	for i := 0; i < n; i++ {
		ref := store.Ref("ns", fmt.Sprintf("app-%d", i))
		if _, _, err := st.Put(ctx, ref, mustYAML(t, "items: []\nstate: {a: 1}\n"), store.PutOptions{OpKey: "init", Result: []byte("r"), TTL: time.Hour}); err != nil {
			t.Fatalf("put %s: %v", ref, err)
		}
		if _, _, err := st.Put(ctx, ref+"-blind", mustYAML(t, "x: 1\n"), store.PutOptions{}); err != nil {
			t.Fatalf("blind put %s: %v", ref, err)
		}
		for attempt := 0; attempt < 2; attempt++ { // the second replays
			res, replayed, err := st.Update(ctx, ref, "op-1", addItem("one"))
			if err != nil || string(res) != "one" || replayed != (attempt == 1) {
				t.Fatalf("update %s attempt %d: %q %v %v", ref, attempt, res, replayed, err)
			}
			_, replayed, err = st.UpdatePaths(ctx, ref, "op-2", []string{"state.b"}, func(doc *document.Map) (bool, []byte, error) {
				return true, nil, document.SetPath(doc, "state.b", "2")
			})
			if err != nil || replayed != (attempt == 1) {
				t.Fatalf("update paths %s attempt %d: %v %v", ref, attempt, replayed, err)
			}
		}
		if got := listItems(t, st, ref); len(got) != 1 {
			t.Fatalf("%s: items %v, want one", ref, got)
		}
		if doc, err := st.GetPaths(ctx, ref, []string{"state.b"}); err != nil || fmt.Sprint(mustGet(doc, "state")) == "" {
			t.Fatalf("get paths %s: %v", ref, err)
		}
		if ttl, err := st.TTL(ctx, ref); err != nil || ttl <= 0 {
			t.Fatalf("ttl %s: %v %v", ref, ttl, err)
		}
		if ok, err := st.Exists(ctx, ref); err != nil || !ok {
			t.Fatalf("exists %s: %v %v", ref, ok, err)
		}
		if _, stored, err := st.SetOpResultNX(ctx, fmt.Sprintf("uid-%d/p/e/notify/0", i), []byte("intent")); err != nil || !stored {
			t.Fatalf("journal %d: %v %v", i, stored, err)
		}
		if got, err := st.ClaimAs(ctx, fmt.Sprintf("c%d", i), "me", time.Minute); err != nil || !got {
			t.Fatalf("claim %d: %v %v", i, got, err)
		}
		if ok, err := st.Delete(ctx, ref+"-blind"); err != nil || !ok {
			t.Fatalf("delete %s: %v %v", ref, ok, err)
		}
	}
	// The contexts really are spread over the shards (so the test exercises routing).
	shards := 0
	for _, node := range cl.Nodes {
		if node.Client().DBSize(ctx).Val() > 0 {
			shards++
		}
	}
	if shards != 3 {
		t.Fatalf("keys on %d of 3 primaries", shards)
	}
	if _, err := st.Migrate(ctx, "ns", nil, true); err == nil || !strings.Contains(err.Error(), "not supported on a Redis Cluster") {
		t.Fatalf("migrate on a cluster: %v", err)
	}
}

func mustGet(doc *document.Map, k string) any { v, _ := doc.Get(k); return v }

// TestSentinelReplicaAcks: through Sentinel a write that acknowledges an op waits for
// a replica (WAIT 1); a replica that does not answer makes the op fail transiently
// (ErrUnavailable) although the primary has the write, and the retry replays the op
// record (applied once) as soon as the replica acknowledges it.
func TestSentinelReplicaAcks(t *testing.T) {
	set := redistest.StartSentinel(t)
	o := store.Options{
		SentinelMasterName: set.MasterName, SentinelAddrs: set.SentinelAddrs,
		SentinelUsername: set.Username, SentinelPassword: set.Password,
		Username: set.Username, Password: set.Password, KeyPrefix: "se",
		ReplicaAckTimeout: 300 * time.Millisecond,
	}
	st := newStore(t, o)
	if st.Topology() != store.Sentinel || st.ReplicaAcks() != 1 {
		t.Fatalf("topology %s acks %d", st.Topology(), st.ReplicaAcks())
	}
	ctx := testCtx(t, 60*time.Second)
	ref := store.Ref("ns", "app")
	if _, _, err := st.Put(ctx, ref, mustYAML(t, "items: []\n"), store.PutOptions{OpKey: "init"}); err != nil {
		t.Fatal(err)
	}
	// Acknowledged means on the replica.
	replica := set.Replica.Client()
	if n := replica.Exists(ctx, st.DocKey(ref), st.DocOpKey(ref, "init")).Val(); n != 2 {
		t.Fatalf("after an acknowledged put the replica has %d of 2 keys", n)
	}

	set.Replica.Pause()
	start := time.Now()
	_, _, err := st.Update(ctx, ref, "op-1", addItem("one"))
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 required replica acknowledgements") {
		t.Fatalf("update without a replica: %v, want ErrUnavailable from WAIT", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("the failed WAIT took %v (timeout 300ms)", d)
	}
	// A blind put and a journal intent wait too.
	if _, _, err := st.Put(ctx, store.Ref("ns", "blind"), mustYAML(t, "x: 1\n"), store.PutOptions{}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("blind put without a replica: %v", err)
	}
	if _, _, err := st.SetOpResultNX(ctx, "uid-2/p/e/notify/0", []byte("intent")); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("journal intent without a replica: %v", err)
	}
	// ... and is taken back, so the op's retry records its own intent and sends.
	if _, found, err := st.OpResult(ctx, "uid-2/p/e/notify/0"); err != nil || found {
		t.Fatalf("the intent that no replica acknowledged is still recorded (%v)", err)
	}
	// An outcome is not waited for (the op's own write, after it, is).
	if err := st.SetOpResult(ctx, "uid-1/p/e/notify/0", []byte("done")); err != nil {
		t.Fatalf("journal outcome without a replica: %v", err)
	}
	// The primary has the write, yet the op was not reported done. A retry while the
	// replica is still away fails again.
	if _, _, err := st.Update(ctx, ref, "op-1", addItem("one")); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("replay without a replica: %v", err)
	}
	set.Replica.Resume()
	res, replayed, err := st.Update(ctx, ref, "op-1", addItem("one"))
	if err != nil || !replayed || string(res) != "one" {
		t.Fatalf("retry after the replica is back: %q replayed=%v %v", res, replayed, err)
	}
	if got := listItems(t, st, ref); len(got) != 1 {
		t.Fatalf("items %v, want [one]", got)
	}
	if n := replica.Exists(ctx, st.DocOpKey(ref, "op-1")).Val(); n != 1 {
		t.Fatal("the replayed op record is not on the replica")
	}
	if cur, stored, err := st.SetOpResultNX(ctx, "uid-2/p/e/notify/0", []byte("intent-2")); err != nil || !stored || string(cur) != "intent-2" {
		t.Fatalf("journal intent with the replica back: %q %v %v", cur, stored, err)
	}
	if n := replica.Exists(ctx, st.OpKey("uid-2/p/e/notify/0")).Val(); n != 1 {
		t.Fatal("an acknowledged journal intent is not on the replica")
	}

	// minReplicaAcks 0: no WAIT, a missing replica does not matter.
	o.MinReplicaAcks = intp(0)
	st0 := newStore(t, o)
	set.Replica.Pause()
	defer set.Replica.Resume()
	if _, _, err := st0.Update(ctx, ref, "op-2", addItem("two")); err != nil {
		t.Fatalf("minReplicaAcks 0: %v", err)
	}
}
