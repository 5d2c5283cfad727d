package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// topologyTimeout bounds how long a Sentinel set or a Cluster takes to become ready.
const topologyTimeout = 45 * time.Second

// SentinelMasterName is the name the sentinels of StartSentinel monitor the primary under.
const SentinelMasterName = "mymaster"

// SentinelSet is a primary, one replica and three sentinels on loopback (real
// processes: redis-server, and redis-server --sentinel as Debian's redis-sentinel is).
// The sentinels (quorum 2) declare the primary down after 1s without an answer and
// promote the replica. Every process has the same ACL user (Username, Password): the
// replica and the sentinels authenticate as it (masteruser, sentinel auth-user and
// sentinel-user). WithConfig lines go to the primary and the replica only.
//
//	set := redistest.StartSentinel(t)         // stopped in t.Cleanup
//	set.Primary.Kill()                        // SIGKILL: the sentinels fail over
//	addr, _ := set.WaitFailover(ctx, set.Primary.Addr)
type SentinelSet struct {
	MasterName         string
	Primary, Replica   *Server // as started: after a failover Replica is the primary
	Sentinels          []*Server
	SentinelAddrs      []string
	Username, Password string
}

// StartSentinel starts a SentinelSet for t and closes it in t.Cleanup. A missing
// redis-server fails the test; it never skips.
func StartSentinel(t testing.TB, opts ...Option) *SentinelSet {
	t.Helper()
	s, err := StartSentinelProcess(opts...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// StartSentinelProcess starts a SentinelSet without a testing.T; the caller must
// Close it.
func StartSentinelProcess(opts ...Option) (set *SentinelSet, err error) {
	c := config{username: DefaultUsername, password: DefaultPassword}
	for _, o := range opts {
		o(&c)
	}
	set = &SentinelSet{MasterName: SentinelMasterName, Username: c.username, Password: c.password}
	defer func() {
		if err != nil {
			set.Close()
		}
	}()
	repl := []string{
		"masteruser " + c.username,
		"masterauth " + quote(c.password),
		"repl-diskless-sync yes",
		"repl-diskless-sync-delay 0",
		"repl-timeout 5",
	}
	if set.Primary, err = StartProcess(append(opts, WithConfig(repl...))...); err != nil {
		return set, fmt.Errorf("starting the primary: %w", err)
	}
	if set.Replica, err = StartProcess(append(opts, WithConfig(append(repl, "replicaof 127.0.0.1 "+strconv.Itoa(set.Primary.Port))...))...); err != nil {
		return set, fmt.Errorf("starting the replica: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), topologyTimeout)
	defer cancel()
	if err := waitFor(ctx, "the replica to sync", func() error {
		info, err := infoField(ctx, set.Replica, "replication", "master_link_status")
		if err == nil && info != "up" {
			err = fmt.Errorf("master_link_status %q", info)
		}
		return err
	}); err != nil {
		return set, err
	}
	sentinelConf := []string{
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", set.MasterName, set.Primary.Port),
		fmt.Sprintf("sentinel down-after-milliseconds %s 1000", set.MasterName),
		fmt.Sprintf("sentinel failover-timeout %s 5000", set.MasterName),
		fmt.Sprintf("sentinel parallel-syncs %s 1", set.MasterName),
		fmt.Sprintf("sentinel auth-user %s %s", set.MasterName, c.username),
		fmt.Sprintf("sentinel auth-pass %s %s", set.MasterName, c.password),
		"sentinel sentinel-user " + c.username,
		"sentinel sentinel-pass " + c.password,
	}
	for i := 0; i < 3; i++ {
		// A sentinel has the ACL user but none of the data nodes' extra configuration
		// (WithConfig lines are for redis-server, e.g. more ACL users).
		sentinel := func(c *config) { c.sentinel, c.tls, c.extra = true, false, nil }
		sen, err := StartProcess(append(opts, sentinel, WithConfig(sentinelConf...))...)
		if err != nil {
			return set, fmt.Errorf("starting sentinel %d: %w", i+1, err)
		}
		set.Sentinels = append(set.Sentinels, sen)
		set.SentinelAddrs = append(set.SentinelAddrs, sen.Addr)
	}
	// Ready when every sentinel knows the replica and the two other sentinels (so a
	// majority can authorize a failover).
	err = waitFor(ctx, "the sentinels to know the replica and each other", func() error {
		for _, sen := range set.Sentinels {
			m, err := set.sentinelMaster(ctx, sen)
			if err != nil {
				return err
			}
			if m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
				return fmt.Errorf("sentinel %s: num-slaves %s, num-other-sentinels %s", sen.Addr, m["num-slaves"], m["num-other-sentinels"])
			}
		}
		return nil
	})
	return set, err
}

func (s *SentinelSet) sentinelClient(sen *Server) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{
		Addr: sen.Addr, Username: s.Username, Password: s.Password,
		DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1, DisableIdentity: true,
	})
}

func (s *SentinelSet) sentinelMaster(ctx context.Context, sen *Server) (map[string]string, error) {
	sc := s.sentinelClient(sen)
	defer sc.Close()
	return sc.Master(ctx, s.MasterName).Result()
}

// MasterAddr is the primary's address as a majority of the running sentinels see it.
func (s *SentinelSet) MasterAddr(ctx context.Context) (string, error) {
	votes := map[string]int{}
	var lastErr error
	for _, sen := range s.Sentinels {
		if !sen.Running() {
			continue
		}
		sc := s.sentinelClient(sen)
		a, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		sc.Close()
		if err != nil {
			lastErr = err
			continue
		}
		if len(a) == 2 {
			addr := a[0] + ":" + a[1]
			if votes[addr]++; votes[addr] >= 2 {
				return addr, nil
			}
		}
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no majority of sentinels agrees on a primary (%v)", votes)
	}
	return "", lastErr
}

// Server is the data server (primary or replica) at addr, nil if none.
func (s *SentinelSet) Server(addr string) *Server {
	for _, srv := range []*Server{s.Primary, s.Replica} {
		if srv != nil && srv.Addr == addr {
			return srv
		}
	}
	return nil
}

// WaitFailover waits until the sentinels name a primary other than from and that
// server answers as a primary; it returns its address.
func (s *SentinelSet) WaitFailover(ctx context.Context, from string) (string, error) {
	var addr string
	err := waitFor(ctx, "the sentinels to promote a replica", func() error {
		a, err := s.MasterAddr(ctx)
		if err != nil {
			return err
		}
		if a == from {
			return fmt.Errorf("the sentinels still name %s", a)
		}
		srv := s.Server(a)
		if srv == nil {
			return fmt.Errorf("the sentinels name %s, not one of ours", a)
		}
		role, err := infoField(ctx, srv, "replication", "role")
		if err == nil && role != "master" {
			err = fmt.Errorf("%s has role %q", a, role)
		}
		addr = a
		return err
	})
	return addr, err
}

// Close stops every process of the set.
func (s *SentinelSet) Close() {
	for _, sen := range s.Sentinels {
		sen.Close()
	}
	for _, srv := range []*Server{s.Primary, s.Replica} {
		if srv != nil {
			srv.Close()
		}
	}
}

// ClusterSet is a Redis Cluster of three primaries (no replicas) on loopback, created
// with redis-cli --cluster create; every node has the ACL user (Username, Password).
type ClusterSet struct {
	Nodes              []*Server
	Addrs              []string
	Username, Password string
}

// StartCluster starts a ClusterSet for t and closes it in t.Cleanup. A missing
// redis-server or redis-cli fails the test; it never skips.
func StartCluster(t testing.TB, opts ...Option) *ClusterSet {
	t.Helper()
	c, err := StartClusterProcess(opts...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// StartClusterProcess starts a ClusterSet without a testing.T; the caller must Close it.
func StartClusterProcess(opts ...Option) (cl *ClusterSet, err error) {
	c := config{username: DefaultUsername, password: DefaultPassword}
	for _, o := range opts {
		o(&c)
	}
	if c.tls {
		return nil, errors.New("redistest: a TLS cluster is not supported")
	}
	bin, err := findServer()
	if err != nil {
		return nil, err
	}
	cli, err := exec.LookPath(filepath.Join(filepath.Dir(bin), "redis-cli"))
	if err != nil {
		if cli, err = exec.LookPath("redis-cli"); err != nil {
			return nil, errors.New("redis-cli not found (it comes with redis-server: apt-get install -y redis-server, or `hack/redis.sh install`)")
		}
	}
	cl = &ClusterSet{Username: c.username, Password: c.password}
	defer func() {
		if err != nil {
			cl.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		n, err := StartProcess(append(opts, func(c *config) { c.cluster = true })...)
		if err != nil {
			return cl, fmt.Errorf("starting cluster node %d: %w", i+1, err)
		}
		cl.Nodes = append(cl.Nodes, n)
		cl.Addrs = append(cl.Addrs, n.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), topologyTimeout)
	defer cancel()
	args := append([]string{"--user", c.username, "--pass", c.password, "--no-auth-warning", "--cluster", "create"}, cl.Addrs...)
	args = append(args, "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		return cl, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	err = waitFor(ctx, "the cluster to be ok on every node", func() error {
		for _, n := range cl.Nodes {
			for field, want := range map[string]string{"cluster_state": "ok", "cluster_slots_ok": "16384", "cluster_known_nodes": "3"} {
				v, err := clusterInfo(ctx, n, field)
				if err != nil {
					return err
				}
				if v != want {
					return fmt.Errorf("%s: %s is %s", n.Addr, field, v)
				}
			}
		}
		return nil
	})
	return cl, err
}

// Client is a cluster client authenticated as the ACL user; the caller closes it.
func (c *ClusterSet) Client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: c.Addrs, Username: c.Username, Password: c.Password,
		DialTimeout: time.Second, DisableIdentity: true,
	})
}

// Close stops every node.
func (c *ClusterSet) Close() {
	for _, n := range c.Nodes {
		n.Close()
	}
}

// waitFor polls check until it returns nil or ctx ends (the error then says what was
// awaited and the last failure).
func waitFor(ctx context.Context, what string, check func() error) error {
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s: %v", what, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// infoField reads one field of INFO section from srv.
func infoField(ctx context.Context, srv *Server, section, field string) (string, error) {
	c := redis.NewClient(srv.options(-1))
	defer c.Close()
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	return lineField(info, field)
}

func clusterInfo(ctx context.Context, srv *Server, field string) (string, error) {
	c := redis.NewClient(srv.options(-1))
	defer c.Close()
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return "", err
	}
	return lineField(info, field)
}

func lineField(text, field string) (string, error) {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no field %s", field)
}
