package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStartPingAndACL(t *testing.T) {
	s := Start(t)
	if s.Username != DefaultUsername || s.Password != DefaultPassword || s.Port == 0 {
		t.Fatalf("unexpected server %+v", s)
	}
	c := s.Client()
	if err := c.Set(ctx(t), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	who, err := c.Do(ctx(t), "ACL", "WHOAMI").Text()
	if err != nil || who != DefaultUsername {
		t.Fatalf("whoami = %q, %v", who, err)
	}
	// The default user stays usable unless disabled.
	anon := redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true})
	defer anon.Close()
	if err := anon.Ping(ctx(t)).Err(); err != nil {
		t.Fatalf("default user: %v", err)
	}
	bad := redis.NewClient(&redis.Options{Addr: s.Addr, Username: DefaultUsername, Password: "nope", MaxRetries: -1, DisableIdentity: true})
	defer bad.Close()
	if err := bad.Ping(ctx(t)).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestDefaultUserDisabled(t *testing.T) {
	s := Start(t, WithDefaultUserDisabled(), WithUser("u1", "p1"))
	if err := s.Client().Ping(ctx(t)).Err(); err != nil {
		t.Fatal(err)
	}
	anon := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DisableIdentity: true})
	defer anon.Close()
	if err := anon.Set(ctx(t), "k", "v", 0).Err(); err == nil {
		t.Fatal("default user could write")
	}
}

func TestStopRestartKeepsData(t *testing.T) {
	s := Start(t)
	c := s.Client()
	if err := c.Set(ctx(t), "k", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	port := s.Port
	s.Stop()
	if s.Running() {
		t.Fatal("still running after Stop")
	}
	if err := c.Ping(ctx(t)).Err(); err == nil {
		t.Fatal("ping works on a stopped server")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Port != port {
		t.Fatalf("port changed %d -> %d", port, s.Port)
	}
	if v, err := c.Get(ctx(t), "k").Result(); err != nil || v != "v1" {
		t.Fatalf("after restart: %q, %v", v, err)
	}
	// Restart of a running server also keeps data.
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx(t), "k").Result(); err != nil || v != "v1" {
		t.Fatalf("after second restart: %q, %v", v, err)
	}
	// Kill is a crash: writes since the last Stop are lost.
	if err := c.Set(ctx(t), "k2", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(ctx(t), "k2").Result(); err != nil || n != 0 {
		t.Fatalf("k2 after kill: %d, %v", n, err)
	}
}

func TestPauseResume(t *testing.T) {
	s := Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Username: s.Username, Password: s.Password,
		ReadTimeout: 200 * time.Millisecond, MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	if err := c.Ping(ctx(t)).Err(); err != nil {
		t.Fatal(err)
	}
	s.Pause()
	if err := c.Ping(ctx(t)).Err(); err == nil {
		t.Fatal("paused server answered")
	}
	s.Resume()
	if err := c.Ping(ctx(t)).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	s := Start(t, WithTLS())
	if !s.TLS || s.CAFile == "" {
		t.Fatalf("no TLS info: %+v", s)
	}
	if _, err := os.Stat(s.CAFile); err != nil {
		t.Fatal(err)
	}
	if err := s.Client().Ping(ctx(t)).Err(); err != nil {
		t.Fatal(err)
	}
	plain := redis.NewClient(&redis.Options{Addr: s.Addr, Username: s.Username, Password: s.Password,
		ReadTimeout: time.Second, MaxRetries: -1, DisableIdentity: true})
	defer plain.Close()
	if err := plain.Ping(ctx(t)).Err(); err == nil {
		t.Fatal("plain-text connection to a TLS server worked")
	}
}

func TestStartProcessAndClose(t *testing.T) {
	s, err := StartProcess()
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir
	if err := s.Client().Ping(ctx(t)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if s.Running() {
		t.Fatal("running after Close")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir %s not removed: %v", dir, err)
	}
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("REDISTEST_SERVER", "")
	_, err := StartProcess()
	if !errors.Is(err, ErrNoRedisServer) || !strings.Contains(err.Error(), "apt-get install -y redis-server") ||
		!strings.Contains(err.Error(), "make deps") {
		t.Fatalf("err = %v", err)
	}
}

// fakeM stands in for *testing.M in the tests of Main.
type fakeM func() int

func (f fakeM) Run() int { return f() }

func TestMainSharesOneServer(t *testing.T) {
	var srv *Server
	var stderr strings.Builder
	code := run(fakeM(func() int {
		if srv == nil || !srv.Running() {
			t.Error("no running server while the tests run")
			return 1
		}
		if err := srv.Client().Ping(ctx(t)).Err(); err != nil {
			t.Error(err)
		}
		return 3
	}), &srv, &stderr, WithDefaultUserDisabled())
	if code != 3 {
		t.Fatalf("exit code %d, want the tests' 3", code)
	}
	if srv == nil || srv.Running() || !srv.DefaultUserDisabled {
		t.Fatalf("server %+v: want one started with the options and stopped after the tests", srv)
	}
	if _, err := os.Stat(srv.Dir); !os.IsNotExist(err) {
		t.Fatalf("dir %s not removed: %v", srv.Dir, err)
	}
	if stderr.Len() != 0 {
		t.Fatalf("stderr: %s", stderr.String())
	}
}

func TestMainFailsWithoutRedis(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("REDISTEST_SERVER", "")
	var srv *Server
	var stderr strings.Builder
	ran := false
	code := run(fakeM(func() int { ran = true; return 0 }), &srv, &stderr)
	if code != 1 || ran || srv != nil {
		t.Fatalf("code %d, tests ran %v, server %v: want 1, no tests, no server", code, ran, srv)
	}
	if msg := stderr.String(); !strings.HasPrefix(msg, "FAIL: ") || !strings.Contains(msg, "needs a real Redis") ||
		!strings.Contains(msg, "apt-get install -y redis-server") {
		t.Fatalf("stderr: %q", msg)
	}
}

func TestSentinelSetFailsOver(t *testing.T) {
	set := StartSentinel(t)
	c := ctx(t)
	addr, err := set.MasterAddr(c)
	if err != nil || addr != set.Primary.Addr {
		t.Fatalf("primary per the sentinels: %q %v, want %s", addr, err, set.Primary.Addr)
	}
	fo := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: set.MasterName, SentinelAddrs: set.SentinelAddrs,
		SentinelUsername: set.Username, SentinelPassword: set.Password,
		Username: set.Username, Password: set.Password, DisableIdentity: true,
	})
	defer fo.Close()
	if err := fo.Set(c, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := fo.Do(c, "WAIT", 1, 2000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d %v", n, err)
	}
	set.Primary.Kill()
	newAddr, err := set.WaitFailover(c, set.Primary.Addr)
	if err != nil || newAddr != set.Replica.Addr {
		t.Fatalf("failover: %q %v, want %s", newAddr, err, set.Replica.Addr)
	}
	var v string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if v, err = fo.Get(c, "k").Result(); err == nil {
			break
		}
	}
	if v != "v" {
		t.Fatalf("after the failover: %q %v", v, err)
	}
}

func TestClusterSet(t *testing.T) {
	cl := StartCluster(t)
	c := ctx(t)
	rdb := cl.Client()
	defer rdb.Close()
	// keys of every node, and a refused cross-slot command (a positive control that it is a cluster)
	for i := 0; i < 30; i++ {
		if err := rdb.Set(c, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	used := 0
	for _, n := range cl.Nodes {
		if k := n.Client().DBSize(c).Val(); k > 0 {
			used++
		}
	}
	if used != 3 {
		t.Fatalf("keys on %d of 3 nodes", used)
	}
	if err := rdb.Do(c, "MSET", "k1", "a", "k2", "b").Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("MSET across slots: %v, want CROSSSLOT", err)
	}
}
