package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// The controller on Redis topologies other than the stack's single Redis (issue
// 13). A Redis Cluster runs the whole suite: `REDIS_TOPOLOGY=cluster` in the
// environment of `go test ./test/e2e/` (hack/stack.sh). Sentinel is brought up by
// the test itself (internal/redistest: real redis-server and redis-server
// --sentinel processes on loopback) and the running controller is pointed at it
// through config-cicdstatemgr, as an admin would.

// pointControllerAt rewrites config-cicdstatemgr's datasources.redis to datasource
// (a YAML flow mapping) and adds secretLines under the Secret's datasources.redis;
// hack/stack.sh apply-config puts the stack's own back at the end of the test.
func pointControllerAt(t *testing.T, datasource, secretLines string) {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() {
		if err := stack("apply-config"); err != nil {
			t.Errorf("restoring the stack's configuration: %v", err)
		}
	})
	cms := kube.CoreV1().ConfigMaps(systemNS)
	cm, err := cms.Get(ctx, "config-cicdstatemgr", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(cm.Data["config.yaml"], "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(l, "    redis: {") {
			lines[i], found = "    redis: "+datasource, true
		}
	}
	if !found {
		t.Fatalf("config-cicdstatemgr has no one-line datasources.redis (hack/stack.sh apply_config writes one):\n%s", cm.Data["config.yaml"])
	}
	cm.Data["config.yaml"] = strings.Join(lines, "\n")
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	secrets := kube.CoreV1().Secrets(systemNS)
	sec, err := secrets.Get(ctx, "cicdstatemgr-secrets", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	text := string(sec.Data["secrets.yaml"])
	if !strings.Contains(text, "    redis:\n") {
		t.Fatalf("cicdstatemgr-secrets has no datasources.redis block")
	}
	// the sentinels' login of a Sentinel stack (hack/stack.sh) gives way to secretLines'
	var kept []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "      sentinel:") {
			kept = append(kept, l)
		}
	}
	text = strings.Join(kept, "\n")
	sec.Data["secrets.yaml"] = []byte(strings.Replace(text, "    redis:\n", "    redis:\n"+secretLines, 1))
	if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitControllerUses waits until the controller answers a get of a context that
// exists only in st (created here): the configuration was reloaded and the
// controller's store is the new one. Runs before that fail (no such context).
func waitControllerUses(t *testing.T, st *store.Store, ns string) {
	t.Helper()
	ctx := context.Background()
	doc, err := document.ParseYAMLMap([]byte("cicdContextDataId: probe\nstate: {marker: here}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Put(ctx, store.Ref(ns, "probe"), doc, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		cr := runOne(t, ns, customRun(fmt.Sprintf("probe-%d", i), "probe", time.Minute,
			strParam("op", "get"), strParam("id", "probe"), arrParam("get", "marker=state.marker")), time.Minute)
		if cr.IsSuccessful() {
			for _, r := range cr.Status.Results {
				if r.Name == "marker" && r.Value == "here" {
					t.Logf("the controller uses the new Redis after %d probe run(s)", i+1)
					return
				}
			}
		}
		if time.Now().After(deadline) {
			c := cr.Status.GetCondition(apis.ConditionSucceeded)
			t.Fatalf("the controller did not switch to the new Redis within 60s: last probe %s: %s\n%s", c.Reason, c.Message, controllerLogTail())
		}
		time.Sleep(time.Second)
	}
}

// storeItems reads state.items of ns/id from st.
func storeItems(t *testing.T, st *store.Store, ns, id string) []string {
	t.Helper()
	doc, err := st.Get(context.Background(), store.Ref(ns, id))
	if err != nil {
		t.Fatal(err)
	}
	state, ok := doc.GetMap("state")
	if !ok {
		t.Fatalf("%s/%s has no state", ns, id)
	}
	raw, _ := state.Get("items")
	list, ok := raw.([]any)
	if !ok {
		t.Fatalf("state.items of %s/%s is %T, not a list", ns, id, raw)
	}
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = fmt.Sprint(v)
	}
	return out
}

// TestSentinelFailoverDuring200Runs: the controller on Redis Sentinel (1 primary,
// 1 replica, 3 sentinels; minReplicaAcks 1 by default), 200 set runs appending to
// one context, the primary SIGKILLed after 50 are done; the sentinels promote the
// replica and the killed primary comes back as its replica (as a restarted pod
// would). Every run reported Succeeded has its value in the list, no value is in
// it twice, every run succeeds, and ops did fail transiently meanwhile (the kill
// hit ops in flight).
func TestSentinelFailoverDuring200Runs(t *testing.T) {
	set := redistest.StartSentinel(t, redistest.WithUser(redisUser, redisPassword))
	st, err := store.New(store.Options{SentinelMasterName: set.MasterName, SentinelAddrs: set.SentinelAddrs,
		SentinelUsername: redisUser, SentinelPassword: redisPassword, Username: redisUser, Password: redisPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pointControllerAt(t, fmt.Sprintf(`{sentinel: {masterName: %s, addresses: ["%s"]}}`, set.MasterName, strings.Join(set.SentinelAddrs, `", "`)),
		fmt.Sprintf("      sentinel: {username: %s, password: %q}\n", redisUser, redisPassword))
	ns := namespace(t, "sentinel")
	waitControllerUses(t, st, ns)

	id := ns + "-ctx"
	initContext(t, ns, id)
	transientBefore := setTransient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	old := set.Primary
	var promoted string
	runs, values := setBatch("add", id, batchSize, runTimeout)
	final := faultMidway(t, ns, "add", runs, 25*time.Millisecond, 50, func() {
		old.Kill()
		mustBeDown(t, old.Addr)
	}, func() {
		addr, err := set.WaitFailover(ctx, old.Addr)
		if err != nil {
			t.Fatalf("failover: %v", err)
		}
		promoted = addr
		if err := old.Restart(); err != nil {
			t.Fatalf("restarting the old primary as a replica: %v", err)
		}
	})
	if promoted != set.Replica.Addr {
		t.Errorf("the sentinels promoted %s, want the replica %s", promoted, set.Replica.Addr)
	}
	transient := setTransient(t) - transientBefore
	t.Logf("%v set ops failed transiently during the failover (and were retried)", transient)
	if transient == 0 {
		t.Errorf("no set op failed transiently: the kill of the primary did not hit the ops in flight")
	}
	list := storeItems(t, st, ns, id)
	checkBatch(t, final, values, list, nil)
	if len(list) != batchSize {
		t.Errorf("state.items holds %d values, want %d", len(list), batchSize)
	}
	t.Logf("%d values in state.items; %d runs completed from the record of an earlier attempt", len(list), replayed(final))
}

// TestClusterTopologyOfTheStack: when the suite runs with REDIS_TOPOLOGY=cluster
// (hack/stack.sh), the controller's contexts are spread over the three primaries
// of the Redis Cluster; on the single Redis, the stack's configuration names it.
// What it guards: a suite meant to run on the Cluster that silently ran on a
// single Redis.
func TestClusterTopologyOfTheStack(t *testing.T) {
	cm, err := kube.CoreV1().ConfigMaps(systemNS).Get(context.Background(), "config-cicdstatemgr", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := cm.Data["config.yaml"]
	if !strings.Contains(cfg, "    redis: "+redisDatasource) {
		t.Fatalf("config-cicdstatemgr's datasources.redis is not the stack's %q:\n%s", redisDatasource, cfg)
	}
	addrs, isCluster := strings.CutPrefix(redisDatasource, "{cluster: {addresses: [")
	if !isCluster {
		t.Logf("the stack's Redis is not a Cluster (%s); REDIS_TOPOLOGY=cluster runs this suite on a Redis Cluster", redisDatasource)
		return
	}
	nodes := strings.Split(strings.NewReplacer(`"`, "", " ", "", "]}}", "").Replace(addrs), ",")
	if len(nodes) != 3 {
		t.Fatalf("%d cluster nodes in %q, want 3", len(nodes), redisDatasource)
	}
	ns := namespace(t, "cluster")
	for i := 0; i < 12; i++ {
		cr := runOne(t, ns, customRun(fmt.Sprintf("init-%d", i), "init", time.Minute, strParam("op", "init"),
			strParam("id", fmt.Sprintf("%s-%d", ns, i)), strParam("app-config", "cicd-contexts: {stage: {channel: cluster}}")), time.Minute)
		if !cr.IsSuccessful() {
			c := cr.Status.GetCondition(apis.ConditionSucceeded)
			t.Fatalf("init %d: %s: %s", i, c.Reason, c.Message)
		}
	}
	st, err := store.New(store.Options{ClusterAddrs: nodes, Username: redisUser, Password: redisPassword})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	used := map[string]bool{}
	for i := 0; i < 12; i++ {
		ref := store.Ref(ns, fmt.Sprintf("%s-%d", ns, i))
		if ok, err := st.Exists(context.Background(), ref); err != nil || !ok {
			t.Fatalf("context %s not in the cluster: %v %v", ref, ok, err)
		}
		used[nodeOfKey(t, nodes, st.DocKey(ref))] = true
	}
	if len(used) < 2 {
		t.Errorf("12 contexts on %d of 3 primaries: the suite did not cross shards", len(used))
	}
}

// nodeOfKey is the address of the cluster node that holds key (the node that
// answers EXISTS 1 without a redirection).
func nodeOfKey(t *testing.T, nodes []string, key string) string {
	t.Helper()
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n, Username: redisUser, Password: redisPassword})
		v, err := c.Exists(context.Background(), key).Result()
		c.Close()
		if err == nil && v == 1 {
			return n
		}
	}
	t.Fatalf("no node holds %s", key)
	return ""
}

// setTransient is the number of set ops that failed transiently (and were
// retried) so far, from the controller's /metrics (0 before the first).
func setTransient(t *testing.T) float64 {
	t.Helper()
	text := httpText(t, probeURL+"/metrics")
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, `cicdstatemgr_ops_total{op="set",outcome="transient"} `); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	return 0
}

func httpText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
