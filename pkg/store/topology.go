package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Topology is how the store reaches Redis.
type Topology string

// Topologies.
const (
	// Single is one Redis at Options.Addr (possibly a primary with replicas the
	// store does not know of).
	Single Topology = "single"
	// Sentinel is a primary found through Redis Sentinel (go-redis's failover
	// client): it asks the sentinels for the primary of SentinelMasterName, and
	// after a failover (a sentinel's +switch-master, or a connection that fails or
	// answers READONLY) reconnects to the promoted replica.
	Sentinel Topology = "sentinel"
	// Cluster is a Redis Cluster (go-redis's cluster client): it routes each
	// command to the primary of its key's hash slot and follows MOVED and ASK
	// redirections. Every operation of the store touches keys of one slot.
	Cluster Topology = "cluster"
)

// DefaultReplicaAckTimeout bounds the WAIT for replica acknowledgements.
const DefaultReplicaAckTimeout = time.Second

// checkTopology validates the topology settings of o, fills the default Addr of a
// single Redis, and returns the topology and the host TLS names by default.
func checkTopology(o *Options) (Topology, string, error) {
	sentinel := o.SentinelMasterName != "" || len(o.SentinelAddrs) > 0 || o.SentinelUsername != "" || o.SentinelPassword != ""
	cluster := len(o.ClusterAddrs) > 0
	switch {
	case sentinel && cluster:
		return "", "", errors.New("store: Redis Sentinel and Redis Cluster settings are both given: choose one topology")
	case sentinel:
		if o.SentinelMasterName == "" {
			return "", "", errors.New("store: Redis Sentinel needs the master name (sentinel.masterName)")
		}
		if len(o.SentinelAddrs) == 0 {
			return "", "", errors.New("store: Redis Sentinel needs at least one sentinel address (sentinel.addresses, host:port)")
		}
		host, err := checkAddrs("sentinel", o.SentinelAddrs)
		return Sentinel, host, err
	case cluster:
		if o.DB != 0 {
			return "", "", fmt.Errorf("store: Redis Cluster has only db 0 (db %d is set)", o.DB)
		}
		host, err := checkAddrs("cluster", o.ClusterAddrs)
		return Cluster, host, err
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return "", "", fmt.Errorf("store: invalid Redis address %q (want host:port): %v", o.Addr, err)
	}
	return Single, host, nil
}

func checkAddrs(what string, addrs []string) (string, error) {
	seen := map[string]bool{}
	var first string
	for i, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return "", fmt.Errorf("store: invalid %s address %q (want host:port)", what, a)
		}
		if seen[a] {
			return "", fmt.Errorf("store: %s address %q is given twice", what, a)
		}
		seen[a] = true
		if i == 0 {
			first = host
		}
	}
	return first, nil
}

// replicaAcks resolves MinReplicaAcks and ReplicaAckTimeout.
func replicaAcks(o *Options, topo Topology) (int, time.Duration, error) {
	acks := 0
	if topo == Sentinel {
		acks = 1
	}
	if o.MinReplicaAcks != nil {
		acks = *o.MinReplicaAcks
	}
	if acks < 0 {
		return 0, 0, fmt.Errorf("store: minReplicaAcks %d is negative", acks)
	}
	t := o.ReplicaAckTimeout
	if t < 0 {
		return 0, 0, fmt.Errorf("store: replicaAckTimeout %v is negative", t)
	}
	if t == 0 {
		t = DefaultReplicaAckTimeout
	}
	if t < time.Millisecond {
		return 0, 0, fmt.Errorf("store: replicaAckTimeout %v is under 1ms", t)
	}
	if acks > 0 && t >= o.ReadTimeout {
		return 0, 0, fmt.Errorf("store: replicaAckTimeout %v must be shorter than the read timeout %v", t, o.ReadTimeout)
	}
	return acks, t, nil
}

// describeAddr is how error messages name the Redis of the store.
func describeAddr(o *Options, topo Topology) string {
	switch topo {
	case Sentinel:
		return fmt.Sprintf("master %q via sentinels %s", o.SentinelMasterName, strings.Join(o.SentinelAddrs, ","))
	case Cluster:
		return "cluster " + strings.Join(o.ClusterAddrs, ",")
	}
	return o.Addr
}

// DefaultPoolSize is the number of Redis connections of a store (per node):
// fixed, not go-redis' 10 per CPU, so that a controller given one CPU keeps
// room for budgets.eventsInFlight handle-events (each holds a connection
// while its handlers call endpoints) and every other op.
const DefaultPoolSize = 32

// newClient makes the go-redis client of the topology. Every client fails fast on an
// unreachable Redis (one dial per attempt, one retry); the failover and cluster clients
// find the new primary themselves on the next attempt (the store's callers retry a
// transient error).
func newClient(o *Options, topo Topology, tlsConf *tls.Config) redis.UniversalClient {
	u := &redis.UniversalOptions{
		Addrs:                 []string{o.Addr},
		MasterName:            o.SentinelMasterName,
		SentinelUsername:      o.SentinelUsername,
		SentinelPassword:      o.SentinelPassword,
		DB:                    o.DB,
		Username:              o.Username,
		Password:              o.Password,
		TLSConfig:             tlsConf,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		ContextTimeoutEnabled: true,
		DialerRetries:         1,
		MaxRetries:            1,
		MinRetryBackoff:       10 * time.Millisecond,
		MaxRetryBackoff:       100 * time.Millisecond,
		DisableIdentity:       true,
		PoolSize:              DefaultPoolSize,
		// go-redis would otherwise send CLIENT MAINT_NOTIFICATIONS on every new
		// connection (Redis Enterprise's maintenance push notifications), one more
		// round trip that open source Redis refuses: the CLI makes one connection
		// per run and pays it each time. The failover client ignores the field.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	switch topo {
	case Sentinel:
		u.Addrs = append([]string(nil), o.SentinelAddrs...)
		return redis.NewFailoverClient(u.Failover())
	case Cluster:
		u.Addrs = append([]string(nil), o.ClusterAddrs...)
		return redis.NewClusterClient(u.Cluster())
	}
	return redis.NewClient(u.Simple())
}

// ReplicaAcks is how many replica acknowledgements a write that acknowledges an op
// waits for (Options.MinReplicaAcks resolved).
func (s *Store) ReplicaAcks() int { return s.acks }

// replicationError is a write that fewer replicas acknowledged than required: the
// write is on the primary but could be lost by a failover, so the op is not reported
// done. It is transient (ErrUnavailable): a retry replays the op record and waits
// again.
type replicationError struct {
	got, want int
	timeout   time.Duration
}

func (e *replicationError) Error() string {
	return fmt.Sprintf("WAIT: %d of %d required replica acknowledgements within %v (the write is not yet durable across a failover)", e.got, e.want, e.timeout)
}

// durable waits, on the connection of tx (the one that just wrote), until s.acks
// replicas have acknowledged everything this connection wrote (WAIT numreplicas
// timeout). With no replica acknowledgement required it does nothing. WAIT is never
// sent inside MULTI (Redis would answer at once there).
func (s *Store) durable(ctx context.Context, tx *redis.Tx) error {
	if s.acks == 0 {
		return nil
	}
	n, err := tx.Do(ctx, "WAIT", s.acks, s.ackTimeout.Milliseconds()).Int()
	if err != nil {
		return err
	}
	if n < s.acks {
		return &unavailableError{addr: s.addr, what: "WAIT", err: &replicationError{got: n, want: s.acks, timeout: s.ackTimeout}}
	}
	return nil
}

// durableReplay makes a replayed op record durable before its result is returned
// again: the op may have been applied by an attempt whose WAIT fell short, so the
// record could still be lost by a failover. WAIT counts from the connection's last
// write, so the record's expiry is renewed (a write that replicates after the
// record) and then WAITed for.
func (s *Store) durableReplay(ctx context.Context, tx *redis.Tx, opK string) error {
	if s.acks == 0 {
		return nil
	}
	if err := tx.PExpire(ctx, opK, s.ttl).Err(); err != nil {
		return err
	}
	return s.durable(ctx, tx)
}

// onConn runs fn on one connection to the primary of key's hash slot (a Watch
// without watched keys: WATCH then UNWATCH), for writes that must WAIT on the
// connection that wrote.
func (s *Store) onConn(ctx context.Context, key string, fn func(tx *redis.Tx) error) error {
	return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		if err := tx.Unwatch(ctx).Err(); err != nil {
			return err
		}
		return fn(tx)
	}, key)
}
