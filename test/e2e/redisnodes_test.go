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
// so that they mean the same on the single Redis, a Redis Cluster and Redis
// Sentinel.

// stackIsCluster reports whether the stack runs a Redis Cluster.
func stackIsCluster() bool { return strings.HasPrefix(redisDatasource, "{cluster:") }

// nodeClient is a client of the one node at addr: for the commands that act on
// a node rather than on keys (SAVE, CONFIG, CLUSTER SLOTS).
func nodeClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Username: redisUser, Password: redisPassword})
}

// stackRedis is a client of the stack's Redis as a whole, of its topology (a
// cluster client routes each key to its primary, a failover client asks the
// sentinels for the primary).
func stackRedis() redis.UniversalClient {
	switch {
	case stackIsCluster():
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: redisNodes, Username: redisUser, Password: redisPassword})
	case stackIsSentinel():
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: sentinelMaster, SentinelAddrs: sentinels,
			SentinelUsername: redisUser, SentinelPassword: redisPassword, Username: redisUser, Password: redisPassword})
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

// proxiedDatasource is config.yaml's datasources.redis of the stack's single
// Redis or Cluster with the proxies for the nodes' addresses.
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

// stackIsSentinel reports whether the stack runs Redis Sentinel.
func stackIsSentinel() bool { return len(sentinels) > 0 }

// sentinelClient is a client of the sentinel at addr.
func sentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, Username: redisUser, Password: redisPassword})
}

// announceProxiesToSentinels is announceProxies for Redis Sentinel: the
// sentinels monitor the primary at its proxy's address (SENTINEL REMOVE and
// MONITOR: a sentinel hands out the address it monitors) and the replica
// announces its proxy's port (CONFIG SET replica-announce-port), so that a
// Sentinel client finds every data node behind its proxy. Replication between
// the nodes stays direct; the sentinels talk to the nodes through the proxies
// too (slowly, well within their 2 s down-after). When the test ends the
// sentinels monitor the primary at its own address again.
func announceProxiesToSentinels(t *testing.T, proxies map[string]*faultproxy.Proxy) {
	t.Helper()
	primary := primaries(t)[0]
	t.Cleanup(func() {
		if err := sentinelsSee(primary, func(string) int { return 0 }, proxies); err != nil {
			t.Errorf("pointing the sentinels back at the nodes: %v", err)
		}
	})
	if err := sentinelsSee(primary, func(n string) int { return proxies[n].Port() }, proxies); err != nil {
		t.Fatal(err)
	}
}

// sentinelsSee makes every data node other than primary announce port(node)
// (0: its own), re-monitors the primary at 127.0.0.1:port(primary) (its own
// port for 0) on every sentinel, and waits until each sentinel names that
// primary and knows the replicas at their announced addresses and the other
// sentinels.
func sentinelsSee(primary string, port func(node string) int, proxies map[string]*faultproxy.Proxy) error {
	ctx := context.Background()
	addrOf := func(n string) string {
		if p := port(n); p != 0 {
			return "127.0.0.1:" + strconv.Itoa(p)
		}
		return n
	}
	var replicas []string
	for n := range proxies {
		if n == primary {
			continue
		}
		if err := announceReplica(ctx, n, port(n)); err != nil {
			return err
		}
		replicas = append(replicas, addrOf(n))
	}
	sort.Strings(replicas)
	if err := waitReplicasListed(ctx, primary, replicas); err != nil {
		return err
	}
	// a sentinel keeps every replica address it ever saw: a fresh MONITOR
	// learns only the ones listed now
	host, p, _ := strings.Cut(addrOf(primary), ":")
	if err := eachSentinel(func(c *redis.SentinelClient) error { return remonitor(ctx, c, host, p) }); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		last := sentinelsAgree(ctx, addrOf(primary), replicas)
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after 30s: %v", last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// announceReplica sets replica-announce-port of the replica at addr and drops
// its link to the primary: the replica announces its port when it connects, and
// reconnects at once (a partial resync, nothing copied again).
func announceReplica(ctx context.Context, addr string, port int) error {
	c := nodeClient(addr)
	defer c.Close()
	if err := c.ConfigSet(ctx, "replica-announce-port", strconv.Itoa(port)).Err(); err != nil {
		return fmt.Errorf("CONFIG SET replica-announce-port on %s: %v", addr, err)
	}
	if err := c.ClientKillByFilter(ctx, "TYPE", "master").Err(); err != nil {
		return fmt.Errorf("CLIENT KILL TYPE master on %s: %v", addr, err)
	}
	return nil
}

// waitReplicasListed waits until INFO replication of the primary lists exactly
// the replicas (host:port, sorted) online.
func waitReplicasListed(ctx context.Context, primary string, replicas []string) error {
	c := nodeClient(primary)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := c.Info(ctx, "replication").Result()
		var got []string
		for _, l := range strings.Split(info, "\r\n") {
			if strings.HasPrefix(l, "slave") && strings.Contains(l, "state=online") {
				f := map[string]string{}
				for _, kv := range strings.Split(l[strings.Index(l, ":")+1:], ",") {
					k, v, _ := strings.Cut(kv, "=")
					f[k] = v
				}
				got = append(got, f["ip"]+":"+f["port"])
			}
		}
		sort.Strings(got)
		if err == nil && strings.Join(got, ",") == strings.Join(replicas, ",") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the primary %s lists the replicas %v online after 10s, want %v (%v)", primary, got, replicas, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// remonitor replaces the sentinel's primary of sentinelMaster with host:port,
// with the settings hack/stack.sh gives it.
func remonitor(ctx context.Context, c *redis.SentinelClient, host, port string) error {
	if err := c.Remove(ctx, sentinelMaster).Err(); err != nil && !strings.Contains(err.Error(), "No such master") {
		return err
	}
	if err := c.Monitor(ctx, sentinelMaster, host, port, "2").Err(); err != nil {
		return err
	}
	for _, kv := range [][2]string{{"down-after-milliseconds", "2000"}, {"failover-timeout", "10000"},
		{"auth-user", redisUser}, {"auth-pass", redisPassword}} {
		if err := c.Set(ctx, sentinelMaster, kv[0], kv[1]).Err(); err != nil {
			return fmt.Errorf("SENTINEL SET %s %s: %v", sentinelMaster, kv[0], err)
		}
	}
	return nil
}

// sentinelsAgree is nil when every sentinel names primary, knows exactly the
// replicas (announced addresses) and the other sentinels.
func sentinelsAgree(ctx context.Context, primary string, replicas []string) error {
	return eachSentinel(func(c *redis.SentinelClient) error { return sentinelAgrees(ctx, c, primary, replicas) })
}

// eachSentinel runs f with a client of each sentinel of the stack in turn,
// up to the first error (which names the sentinel).
func eachSentinel(f func(*redis.SentinelClient) error) error {
	for _, s := range sentinels {
		c := sentinelClient(s)
		err := f(c)
		c.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %v", s, err)
		}
	}
	return nil
}

func sentinelAgrees(ctx context.Context, c *redis.SentinelClient, primary string, replicas []string) error {
	m, err := c.Master(ctx, sentinelMaster).Result()
	if err != nil {
		return err
	}
	if got := m["ip"] + ":" + m["port"]; got != primary || m["num-other-sentinels"] != strconv.Itoa(len(sentinels)-1) {
		return fmt.Errorf("primary %s (want %s), %s other sentinels, flags %s", got, primary, m["num-other-sentinels"], m["flags"])
	}
	rs, err := c.Replicas(ctx, sentinelMaster).Result()
	if err != nil {
		return err
	}
	var got []string
	for _, r := range rs {
		if !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") {
			got = append(got, r["ip"]+":"+r["port"])
		}
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(replicas, ",") {
		return fmt.Errorf("replicas up %v, want %v", got, replicas)
	}
	return nil
}
