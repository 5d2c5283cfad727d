package configwatch

import (
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// TestApplyTopologies: the sentinel and cluster blocks build a store of that
// topology (the sentinels' login from the Secret), the same settings keep the store,
// a changed address list rebuilds it, and a bad block is an invalid configuration
// naming the key.
func TestApplyTopologies(t *testing.T) {
	src, _ := newTestSource()
	sentinel := "cicdstatemgr:\n  datasources:\n    redis:\n      sentinel: {masterName: m, addresses: [\"127.0.0.1:26379\", \"127.0.0.1:26380\"]}\n"
	secrets := []byte("cicdstatemgr:\n  datasources:\n    redis:\n      password: p\n      sentinel: {username: su, password: sp}\n")
	if err := src.Apply([]byte(sentinel), secrets); err != nil {
		t.Fatal(err)
	}
	st := src.Store()
	if st.Topology() != store.Sentinel || st.ReplicaAcks() != 1 || !strings.Contains(st.Addr(), `master "m" via sentinels 127.0.0.1:26379,127.0.0.1:26380`) {
		t.Fatalf("sentinel store: %s acks %d addr %s", st.Topology(), st.ReplicaAcks(), st.Addr())
	}
	if err := src.Apply([]byte(sentinel), secrets); err != nil || src.Store() != st {
		t.Fatalf("same sentinel settings rebuilt the store (%v)", err)
	}
	cluster := "cicdstatemgr:\n  datasources:\n    redis:\n      cluster: {addresses: [\"127.0.0.1:7000\"]}\n      minReplicaAcks: 1\n"
	if err := src.Apply([]byte(cluster), nil); err != nil {
		t.Fatal(err)
	}
	if c := src.Store(); c == st || c.Topology() != store.Cluster || c.ReplicaAcks() != 1 {
		t.Fatalf("cluster store: %s acks %d", c.Topology(), c.ReplicaAcks())
	}
	err := src.Apply([]byte("cicdstatemgr:\n  datasources:\n    redis:\n      sentinel: {addresses: [\"127.0.0.1:1\"]}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "invalid controller configuration") || !strings.Contains(err.Error(), "datasources.redis.sentinel.masterName is missing") {
		t.Fatalf("bad sentinel block: %v", err)
	}
	if _, _, cerr := src.Current(); cerr == nil {
		t.Fatal("the source does not report the invalid configuration")
	}
}
