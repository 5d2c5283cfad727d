// Package store keeps cicd context documents in Redis (key order kept, see package
// document), with atomic read-modify-write, partial reads and writes, and exactly-once
// records.
//
// A context is named by a ref, "<namespace>/<id>" (Ref): it belongs to the Kubernetes
// namespace whose CustomRun created it (the CLI names the namespace explicitly), and the
// same id in two namespaces is two contexts. Keys (prefix defaults to "cicdstatemgr"):
//
//	<prefix>:{<ns>/<id>}:ctx         the cicd context data document: a hash with one
//	                                 field per top-level key ("t:<key>") except state, one
//	                                 field per key of state ("s:<key>"), and the key order
//	                                 ("order"); each value compact JSON (see layout.go)
//	<prefix>:{<ns>/<id>}:history     the history of the context: a list of JSON entries
//	                                 (history.Entry), newest first, appended in the
//	                                 MULTI/EXEC of each write made with WithHistory,
//	                                 trimmed to its bound, with the document's TTL
//	                                 (history.go; docs/history.md)
//	<prefix>:{ns:<namespace>}:contexts  the index of a namespace's contexts: a sorted
//	                                 set of ids scored by their last write (Unix ms),
//	                                 written after each committed write (Contexts)
//	<prefix>:{<ns>/<id>}:op:<opKey>  the result of an operation that wrote the document
//	                                 and must apply once (Put, Update, UpdatePaths);
//	                                 expires after Options.DoneTTL
//	<prefix>:op:<key>                a standalone op record (SetOpResult: the event
//	                                 handlers' side-effect journal)
//	<prefix>:claim:<key>             a claim (Claim / Release)
//
// Everything one operation on a context touches shares the hash tag {<ns>/<id>}, so it
// lives in one hash slot of a Redis Cluster. In keys the id is escaped ('%', '{' and '}'
// as %25, %7B and %7D) so that it cannot close the tag and two contexts never share a
// key; the key prefix may not contain '{' or '}'. Contexts stored before namespaces
// existed (<prefix>:ctx:<id>, LegacyDocKey) are moved into a namespace by Migrate.
//
// Every write of a document is inside MULTI/EXEC (with its op record when there is
// one), and every read is one command (HGETALL, HMGET), so a reader never sees a
// half-written document and a repeated operation never applies twice. Update and
// UpdatePaths are optimistic (WATCH) and retry lost races until their context ends;
// they write only the fields that changed, and UpdatePaths and GetPaths read only the
// fields their paths need, so small operations cost the same however large the rest
// of the document is.
//
// Topologies (topology.go): a single Redis, a primary through Redis Sentinel, or a
// Redis Cluster, all through go-redis's UniversalClient; every transaction and script
// names keys of one hash slot. With Options.MinReplicaAcks (default 1 with Sentinel)
// every write that acknowledges an op is followed by WAIT on its connection, and too
// few replica acknowledgements make the op fail with ErrUnavailable (its retry replays
// the record and waits again), so an acknowledged op survives a failover.
//
// Errors: errors.Is(err, ErrNotFound) for a missing context, ErrUnavailable for a Redis
// that cannot be reached or timed out (transient: retry later), ErrAuth for rejected
// credentials or permissions (not transient), ErrInvalidKey for a bad ref or op key.
// Messages of Redis faults name the Redis address and key, never the password; a not
// found names the ref only.
package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Options.
const (
	DefaultAddr         = "127.0.0.1:6379"
	DefaultKeyPrefix    = "cicdstatemgr"
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = 3 * time.Second
	DefaultWriteTimeout = 3 * time.Second
	DefaultDoneTTL      = 7 * 24 * time.Hour

	// MaxIDLen is the longest context id accepted, in bytes.
	MaxIDLen = 253
	// MaxOpKeyLen is the longest op or claim key accepted, in bytes.
	MaxOpKeyLen = 1024
)

// Options say how to reach Redis and how to name keys. Zero values take the defaults.
type Options struct {
	Addr     string // host:port; default 127.0.0.1:6379
	DB       int
	Username string // ACL user; empty: "default"
	Password string

	// TLS enables TLS. TLSCAFile (PEM) replaces the system roots; TLSServerName
	// defaults to the host of Addr. Setting any TLS* field without TLS is an error.
	TLS                   bool
	TLSCAFile             string
	TLSInsecureSkipVerify bool
	TLSServerName         string

	KeyPrefix string // default "cicdstatemgr"

	DialTimeout  time.Duration // default 2s
	ReadTimeout  time.Duration // default 3s
	WriteTimeout time.Duration // default 3s

	// DoneTTL is how long op records (exactly-once results) are kept; default 7 days.
	DoneTTL time.Duration

	// MaxContextBytes bounds the encoded size of a stored context (size.go);
	// a write over it fails with ErrTooLarge and writes nothing. 0: no bound
	// (set it from config budgets.contextBytes).
	MaxContextBytes int64

	// Topology (topology.go): a single Redis at Addr (default), a primary found
	// through Sentinel (SentinelMasterName and SentinelAddrs; Addr unused), or a
	// Redis Cluster (ClusterAddrs, seed nodes; Addr unused). Username, Password,
	// DB and the TLS settings apply to the Redis nodes in every topology;
	// SentinelUsername and SentinelPassword authenticate to the sentinels (the
	// sentinels use TLS when TLS is set).
	SentinelMasterName string
	SentinelAddrs      []string
	SentinelUsername   string
	SentinelPassword   string
	ClusterAddrs       []string

	// MinReplicaAcks is how many replicas must acknowledge (WAIT) every write
	// that acknowledges an op before it is reported done; nil: 1 with Sentinel,
	// 0 otherwise. On a Cluster it counts the replicas of the written key's
	// shard. ReplicaAckTimeout bounds the wait (default 1s, less than
	// ReadTimeout); too few acknowledgements make the op fail with ErrUnavailable
	// (transient: it is retried and replays its op record, waiting again).
	MinReplicaAcks    *int
	ReplicaAckTimeout time.Duration
}

// Hooks are added to the go-redis client of every Store made afterwards: the
// controller sets its tracing there at start (pkg/observability.Install), so
// that the CLI, which never sets them, links no tracing library (its start-up
// is measured against a Go hello world: README, Benchmarks). Set them before
// any Store is made, never concurrently with New.
var Hooks []redis.Hook

// Store is a Redis-backed document store. It is safe for concurrent use.
type Store struct {
	rdb      redis.UniversalClient
	topology Topology
	addr     string
	user     string
	secret   string
	// secret2 is the sentinels' password when it differs (scrubbed too)
	secret2 string
	prefix  string
	ttl     time.Duration // op records
	// maxContext is Options.MaxContextBytes
	maxContext int64
	// acks and ackTimeout: Options.MinReplicaAcks and ReplicaAckTimeout
	acks       int
	ackTimeout time.Duration
}

// New validates o and makes a Store. It does not connect; use Ping to check the
// connection.
func New(o Options) (*Store, error) {
	topo, host, err := checkTopology(&o)
	if err != nil {
		return nil, err
	}
	if o.DB < 0 {
		return nil, fmt.Errorf("store: invalid Redis db %d", o.DB)
	}
	if strings.ContainsAny(o.KeyPrefix, "{}") {
		return nil, fmt.Errorf("store: keyPrefix %q may not contain '{' or '}' (they delimit the hash tag of a context)", o.KeyPrefix)
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.DoneTTL <= 0 {
		o.DoneTTL = DefaultDoneTTL
	}
	var tlsConf *tls.Config
	if o.TLS {
		tlsConf = &tls.Config{
			MinVersion:         tls.VersionTLS12,
			ServerName:         o.TLSServerName,
			InsecureSkipVerify: o.TLSInsecureSkipVerify, //nolint:gosec // explicit opt-in
		}
		if tlsConf.ServerName == "" {
			tlsConf.ServerName = host
		}
		if o.TLSCAFile != "" {
			pem, err := os.ReadFile(o.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("store: reading Redis TLS CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("store: Redis TLS CA file %s holds no PEM certificate", o.TLSCAFile)
			}
			tlsConf.RootCAs = pool
		}
	} else if o.TLSCAFile != "" || o.TLSInsecureSkipVerify || o.TLSServerName != "" {
		return nil, errors.New("store: Redis TLS settings (CA file, server name or insecure-skip-verify) are given but TLS is off")
	}
	user := o.Username
	if user == "" {
		user = "default"
	}
	acks, ackTimeout, err := replicaAcks(&o, topo)
	if err != nil {
		return nil, err
	}
	s := &Store{
		topology: topo,
		addr:     describeAddr(&o, topo),
		user:     user,
		secret:   o.Password,
		prefix:   o.KeyPrefix,
		ttl:      o.DoneTTL,

		maxContext: o.MaxContextBytes,
		acks:       acks,
		ackTimeout: ackTimeout,
	}
	if o.SentinelPassword != "" && o.SentinelPassword != o.Password {
		s.secret2 = o.SentinelPassword
	}
	s.rdb = newClient(&o, topo, tlsConf)
	for _, h := range Hooks {
		s.rdb.AddHook(h)
	}
	return s, nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.rdb.Close() }

// Addr is the Redis address.
func (s *Store) Addr() string { return s.addr }

// Client is the underlying go-redis client (a *redis.Client, a failover client through
// Sentinel, or a *redis.ClusterClient), for callers needing more than Store offers.
// Keys of the store are built with DocKey, DocOpKey, OpKey and ClaimKey. On a Cluster
// every multi-key command, transaction and script must name keys of one hash slot.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Topology says how the store reaches Redis.
func (s *Store) Topology() Topology { return s.topology }

// Ping checks that Redis answers and accepts the credentials.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return s.wrap(err, "PING", "")
	}
	return nil
}
