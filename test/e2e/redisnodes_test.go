package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/test/faultproxy"
)

// The nodes of the stack's Redis, whatever its topology (hack/stack.sh
// REDIS_TOPOLOGY): the fault tests act on each node (a snapshot, a slow link),
// so that they mean the same on the single Redis and on a Redis Cluster.

// stackIsCluster reports whether the stack runs a Redis Cluster.
func stackIsCluster() bool { return strings.HasPrefix(redisDatasource, "{cluster:") }

// nodeClient is a client of the one node at addr: for the commands that act on
// a node rather than on keys (SAVE, CONFIG, CLUSTER SLOTS).
func nodeClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Username: redisUser, Password: redisPassword})
}

// stackRedis is a client of the stack's Redis as a whole, of its topology (a
// cluster client routes each key to its primary).
func stackRedis() redis.UniversalClient {
	if stackIsCluster() {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: redisNodes, Username: redisUser, Password: redisPassword})
	}
	return nodeClient(redisNodes[0])
}

// primaries are the addresses of the nodes of the stack's Redis that answer
// ROLE as a primary: the one Redis, each primary of the Cluster, the primary of
// the Sentinel set (whichever node that is after a failover).
func primaries(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, n := range redisNodes {
		c := nodeClient(n)
		role, err := c.Do(context.Background(), "ROLE").Slice()
		c.Close()
		if err != nil {
			t.Fatalf("ROLE of %s: %v", n, err)
		}
		if len(role) > 0 && role[0] == "master" {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no node of %v is a primary", redisNodes)
	}
	return out
}

// contextPerPrimary returns, for each primary of the stack's Redis (primaries),
// the id of a context of namespace ns whose keys that primary holds ("<ns>-ctx"
// when there is one primary), so that a test writing to each of them
// exercises every primary.
func contextPerPrimary(t *testing.T, ns string, primaries []string) map[string]string {
	t.Helper()
	if !stackIsCluster() {
		return map[string]string{primaries[0]: ns + "-ctx"}
	}
	st, err := store.New(store.Options{ClusterAddrs: redisNodes, Username: redisUser, Password: redisPassword})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: redisNodes, Username: redisUser, Password: redisPassword})
	defer cc.Close()
	ids := map[string]string{}
	for i := 0; len(ids) < len(primaries); i++ {
		if i == 1000 {
			t.Fatalf("1000 context ids cover only %d of the %d primaries %v", len(ids), len(primaries), ids)
		}
		id := fmt.Sprintf("%s-ctx-%d", ns, i)
		// the document's hash tag puts all of the context's keys in its slot
		primary, err := cc.MasterForKey(context.Background(), st.DocKey(store.Ref(ns, id)))
		if err != nil {
			t.Fatal(err)
		}
		if node := primary.Options().Addr; ids[node] == "" {
			ids[node] = id
		}
	}
	return ids
}

// saveSnapshot makes the node at addr write its RDB snapshot now and returns
// the snapshot's path, as the node reports it (CONFIG GET dir and dbfilename).
func saveSnapshot(t *testing.T, addr string) string {
	t.Helper()
	c := nodeClient(addr)
	defer c.Close()
	ctx := context.Background()
	// SAVE is refused while a background save (Redis's own save policy) runs:
	// wait for it to end and save again
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		err := c.Save(ctx).Err()
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "Background save already in progress") || time.Now().After(deadline) {
			t.Fatalf("SAVE on %s: %v", addr, err)
		}
	}
	dir, err := c.ConfigGet(ctx, "dir").Result()
	if err != nil {
		t.Fatal(err)
	}
	file, err := c.ConfigGet(ctx, "dbfilename").Result()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir["dir"], file["dbfilename"])
}

// slowProxies starts a faultproxy in front of every node of the stack's Redis,
// each holding every reply for delay; they close when the test ends.
func slowProxies(t *testing.T, delay time.Duration) map[string]*faultproxy.Proxy {
	t.Helper()
	proxies := map[string]*faultproxy.Proxy{}
	t.Cleanup(func() {
		for _, p := range proxies {
			p.Close()
		}
	})
	for _, n := range redisNodes {
		p, err := faultproxy.Start("127.0.0.1:0", n, delay)
		if err != nil {
			t.Fatal(err)
		}
		proxies[n] = p
	}
	return proxies
}

// proxiedDatasource is config.yaml's datasources.redis of the stack's topology
// with the proxies for addresses.
func proxiedDatasource(proxies map[string]*faultproxy.Proxy) string {
	if !stackIsCluster() {
		return fmt.Sprintf("{host: 127.0.0.1, port: %d, isPrimary: true}", proxies[redisNodes[0]].Port())
	}
	addrs := make([]string, 0, len(redisNodes))
	for _, n := range redisNodes {
		addrs = append(addrs, `"`+proxies[n].Addr()+`"`)
	}
	return "{cluster: {addresses: [" + strings.Join(addrs, ", ") + "]}}"
}

// announceProxies makes every primary of the Cluster announce its proxy's port
// (CONFIG SET cluster-announce-port, Redis 7) and waits until every node's
// CLUSTER SLOTS says so: a cluster client, which connects to the addresses of
// the slot map and of MOVED, then reaches each node only through its proxy.
// The Cluster stays the real one: its bus port (port+10000) is announced
// unchanged, so the nodes keep talking to each other directly. When the test
// ends the nodes announce their own ports again.
func announceProxies(t *testing.T, proxies map[string]*faultproxy.Proxy) {
	t.Helper()
	own := map[string]string{}
	for _, n := range redisNodes {
		own[n] = n
	}
	t.Cleanup(func() {
		if err := announce(proxies, func(string) int { return 0 }); err != nil {
			t.Errorf("announcing the nodes' own ports again: %v", err)
			return
		}
		if err := waitSlotMap(own); err != nil {
			t.Errorf("after announcing the nodes' own ports again: %v", err)
		}
	})
	if err := announce(proxies, func(n string) int { return proxies[n].Port() }); err != nil {
		t.Fatal(err)
	}
	via := map[string]string{}
	for n, p := range proxies {
		via[n] = p.Addr()
	}
	if err := waitSlotMap(via); err != nil {
		t.Fatal(err)
	}
}

// announce sets cluster-announce-port of every node to port(node) (0: its own).
func announce(proxies map[string]*faultproxy.Proxy, port func(node string) int) error {
	for n := range proxies {
		c := nodeClient(n)
		err := c.ConfigSet(context.Background(), "cluster-announce-port", strconv.Itoa(port(n))).Err()
		c.Close()
		if err != nil {
			return fmt.Errorf("CONFIG SET cluster-announce-port on %s: %v", n, err)
		}
	}
	return nil
}

// waitSlotMap waits (10 s at most: the nodes gossip every node timeout / 2,
// hack/stack.sh sets 2 s) until the CLUSTER SLOTS of every node names
// exactly the addresses of want (by node), the slot map clients will load.
func waitSlotMap(want map[string]string) error {
	var wantAddrs []string
	for _, a := range want {
		wantAddrs = append(wantAddrs, a)
	}
	sort.Strings(wantAddrs)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var last string
		ok := true
		for n := range want {
			got, err := slotMapAddrs(n)
			if err != nil || strings.Join(got, ",") != strings.Join(wantAddrs, ",") {
				ok, last = false, fmt.Sprintf("%s: %v %v", n, got, err)
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CLUSTER SLOTS does not name %v after 10s: %s", wantAddrs, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// slotMapAddrs is the sorted addresses CLUSTER SLOTS of the node at addr names.
func slotMapAddrs(addr string) ([]string, error) {
	c := nodeClient(addr)
	defer c.Close()
	slots, err := c.ClusterSlots(context.Background()).Result()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, s := range slots {
		for _, n := range s.Nodes {
			seen[n.Addr] = true
		}
	}
	var out []string
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, nil
}
