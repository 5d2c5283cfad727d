package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRedisTopologies(t *testing.T) {
	parse := func(t *testing.T, redis, secrets string) (Redis, error) {
		t.Helper()
		sec := ""
		if secrets != "" {
			sec = "cicdstatemgr:\n  datasources:\n    redis:\n" + secrets
		}
		c, err := Parse([]byte("cicdstatemgr:\n  datasources:\n    redis:\n"+redis), []byte(sec))
		if err != nil {
			t.Fatal(err)
		}
		return c.Redis()
	}
	r, err := parse(t, "      host: r1\n      port: 6380\n", "")
	if err != nil || r.Topology != "single" || r.Addr != "r1:6380" || r.MinReplicaAcks != nil {
		t.Fatalf("single: %+v %v", r, err)
	}
	r, err = parse(t, `      sentinel:
        masterName: mymaster
        addresses: ["s1:26379", "s2:26379"]
      minReplicaAcks: 2
      replicaAckTimeout: 250ms
`, "      username: u\n      password: p\n      sentinel: {username: su, password: sp}\n")
	if err != nil {
		t.Fatal(err)
	}
	if r.Topology != "sentinel" || r.SentinelMasterName != "mymaster" || !reflect.DeepEqual(r.SentinelAddrs, []string{"s1:26379", "s2:26379"}) ||
		r.SentinelUsername != "su" || r.SentinelPassword != "sp" || r.Username != "u" || r.Password != "p" ||
		r.MinReplicaAcks == nil || *r.MinReplicaAcks != 2 || r.ReplicaAckTimeout != 250*time.Millisecond {
		t.Fatalf("sentinel: %+v", r)
	}
	o := r.StoreOptions()
	if o.SentinelMasterName != "mymaster" || o.SentinelPassword != "sp" || *o.MinReplicaAcks != 2 {
		t.Fatalf("store options: %+v", o)
	}
	r, err = parse(t, "      cluster: {addresses: [\"c1:7000\", \"c2:7000\", \"c3:7000\"]}\n", "")
	if err != nil || r.Topology != "cluster" || len(r.ClusterAddrs) != 3 {
		t.Fatalf("cluster: %+v %v", r, err)
	}

	for _, c := range []struct{ redis, want string }{
		{"      sentinel: {addresses: [\"s:1\"]}\n", "sentinel.masterName is missing"},
		{"      sentinel: {masterName: m}\n", "sentinel.addresses must be a non-empty list"},
		{"      sentinel: {masterName: m, addresses: [\"s1\"]}\n", `sentinel.addresses: "s1" is not host:port`},
		{"      sentinel: {masterName: m, addresses: [\"s1:x\"]}\n", "port that is not a number"},
		{"      sentinel: {masterName: m, addresses: [\"s:1\"], master: x}\n", "sentinel.master is not a known setting"},
		{"      sentinel: mymaster\n", "sentinel must be a map"},
		{"      cluster: {addresses: []}\n", "cluster.addresses must be a non-empty list"},
		{"      cluster: {addresses: [\"c:1\"]}\n      db: 2\n", "a Redis Cluster has only db 0"},
		{"      cluster: {addresses: [\"c:1\"]}\n      sentinel: {masterName: m, addresses: [\"s:1\"]}\n", "choose one topology"},
		{"      cluster: {addresses: [\"c:1\"]}\n      host: r1\n", "host is set together with cluster"},
		{"      minReplicaAcks: -1\n", "minReplicaAcks \"-1\" is not a number >= 0"},
		{"      minReplicaAcks: one\n", "is not a number"},
		{"      replicaAckTimeout: 1\n", "replicaAckTimeout \"1\" is not a duration"},
	} {
		_, err := parse(t, c.redis, "")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "datasources.redis.") {
			t.Errorf("%q: %v, want an error containing %q", c.redis, err, c.want)
		}
	}
}
