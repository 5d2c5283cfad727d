// Package redistest starts a real redis-server for tests.
//
// Each server runs on a free 127.0.0.1 port with a private temporary directory, keeps
// nothing on disk while it runs (no RDB save points, no AOF) and has an ACL user
// (default cicdstatemgr / 123$aBcZ, like the project's fixtures):
//
//	srv := redistest.Start(t)                        // stopped in t.Cleanup
//	rdb := srv.Client()                              // closed with the server
//
// To share one server among the tests of a package (Main starts it, runs the tests,
// stops it and exits with their code; a server that cannot start fails the run):
//
//	var srv *redistest.Server
//
//	func TestMain(m *testing.M) {
//		redistest.Main(m, &srv, redistest.WithDefaultUserDisabled())
//	}
//
// redis-server must be on PATH (Debian: apt-get install -y redis-server, or
// `hack/redis.sh install` / `make deps`); REDISTEST_SERVER may name another binary.
// A missing binary is an error, never a skip.
package redistest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Default ACL user of a test server (the project's fixtures use the same).
const (
	DefaultUsername = "cicdstatemgr"
	DefaultPassword = "123$aBcZ"
)

// ErrNoRedisServer is returned (StartProcess) or reported (Start) when redis-server
// cannot be found.
var ErrNoRedisServer = errors.New("redis-server not found on PATH: run `make deps` " +
	"(or `hack/redis.sh install`, or as root: apt-get install -y redis-server); " +
	"REDISTEST_SERVER may name the binary")

// startTimeout bounds how long a start waits for PING to answer.
const startTimeout = 15 * time.Second

type config struct {
	username, password string
	disableDefaultUser bool
	tls                bool
	dir                string
	extra              []string
	// sentinel starts the process in sentinel mode (redis-server --sentinel);
	// cluster enables cluster mode with a free cluster bus port (topology.go).
	sentinel, cluster bool
}

// Option configures a test server.
type Option func(*config)

// WithUser sets the ACL user (all commands, all keys and channels).
func WithUser(username, password string) Option {
	return func(c *config) { c.username, c.password = username, password }
}

// WithDefaultUserDisabled switches the "default" user off, so every connection must
// authenticate as the ACL user (as hack/redis.sh and production setups do).
func WithDefaultUserDisabled() Option {
	return func(c *config) { c.disableDefaultUser = true }
}

// WithTLS serves TLS only (no plain-text port) on Port with a certificate for 127.0.0.1
// and localhost signed by a CA generated for this server (Server.CAFile). Clients need no
// certificate.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// WithDir uses dir (created if missing, never removed) instead of a temporary directory.
func WithDir(dir string) Option {
	return func(c *config) { c.dir = dir }
}

// WithConfig appends raw redis.conf lines, e.g. "maxmemory 10mb".
func WithConfig(lines ...string) Option {
	return func(c *config) { c.extra = append(c.extra, lines...) }
}

// Server is a running (or stopped) redis-server.
type Server struct {
	Addr     string // 127.0.0.1:<Port>
	Port     int
	Username string
	Password string
	Dir      string // working directory: redis.conf, redis.log, dump.rdb, certificates

	// TLS is set when the server speaks TLS only; CAFile is the PEM of the CA that
	// signed the server certificate (CertFile, KeyFile).
	TLS                       bool
	CAFile, CertFile, KeyFile string
	DefaultUserDisabled       bool

	bin       string
	conf      string
	removeDir bool
	sentinel  bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd exits
	paused  bool
	clients []*redis.Client
	closed  bool
}

// Start starts a server for t and stops it (removing its directory) in t.Cleanup.
// A missing redis-server fails the test with instructions; it never skips.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := StartProcess(opts...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Main is the TestMain of a package whose tests share one server: it starts a
// server with opts, stores it in *srv, runs the tests, stops the server and exits
// with the tests' code. When the server cannot start (redis-server missing, see
// ErrNoRedisServer) it prints why and exits 1 without running any test: a missing
// server fails the run, never skips it.
func Main(m *testing.M, srv **Server, opts ...Option) {
	os.Exit(run(m, srv, os.Stderr, opts...))
}

// run is Main without the exit; it reports a failed start to stderr.
func run(m interface{ Run() int }, srv **Server, stderr io.Writer, opts ...Option) int {
	s, err := StartProcess(opts...)
	if err != nil {
		fmt.Fprintf(stderr, "FAIL: %s needs a real Redis: %v\n", filepath.Base(os.Args[0]), err)
		return 1
	}
	defer s.Close()
	*srv = s
	return m.Run()
}

// StartProcess starts a server without a testing.T (e.g. from TestMain). The caller
// must call Close.
func StartProcess(opts ...Option) (*Server, error) {
	c := config{username: DefaultUsername, password: DefaultPassword}
	for _, o := range opts {
		o(&c)
	}
	bin, err := findServer()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Username:            c.username,
		Password:            c.password,
		TLS:                 c.tls,
		DefaultUserDisabled: c.disableDefaultUser,
		bin:                 bin,
		sentinel:            c.sentinel,
	}
	if c.dir != "" {
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			return nil, err
		}
		s.Dir, err = filepath.Abs(c.dir)
		if err != nil {
			return nil, err
		}
	} else {
		s.Dir, err = os.MkdirTemp("", "redistest-")
		if err != nil {
			return nil, err
		}
		s.removeDir = true
	}
	fail := func(err error) (*Server, error) {
		if s.removeDir {
			_ = os.RemoveAll(s.Dir)
		}
		return nil, err
	}
	if c.tls {
		if err := s.writeCerts(); err != nil {
			return fail(fmt.Errorf("generating TLS certificates: %w", err))
		}
	}
	// A free port can be taken between probing and binding: try a few.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		s.Port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := s.writeConfig(&c); err != nil {
			return fail(err)
		}
		lastErr = s.start()
		if lastErr == nil {
			return s, nil
		}
		if !strings.Contains(lastErr.Error(), "already in use") {
			break
		}
	}
	return fail(lastErr)
}

func findServer() (string, error) {
	if p := os.Getenv("REDISTEST_SERVER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("REDISTEST_SERVER=%s: %w", p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", ErrNoRedisServer
	}
	return p, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) writeConfig(c *config) error {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# written by internal/redistest")
	w("bind 127.0.0.1")
	if s.TLS {
		w("port 0")
		w("tls-port %d", s.Port)
		w("tls-cert-file %s", quote(s.CertFile))
		w("tls-key-file %s", quote(s.KeyFile))
		w("tls-ca-cert-file %s", quote(s.CAFile))
		w("tls-auth-clients no")
	} else {
		w("port %d", s.Port)
	}
	w("daemonize no")
	w("dir %s", quote(s.Dir))
	w("logfile %s", quote(filepath.Join(s.Dir, "redis.log")))
	w(`save ""`)
	w("appendonly no")
	w("dbfilename dump.rdb")
	w("protected-mode no")
	if c.disableDefaultUser {
		w("user default off")
	}
	w("user %s on >%s ~* &* +@all", c.username, c.password)
	if c.cluster {
		bus, err := freePort()
		if err != nil {
			return err
		}
		w("cluster-enabled yes")
		w("cluster-config-file nodes.conf")
		w("cluster-port %d", bus)
		w("cluster-node-timeout 2000")
	}
	for _, l := range c.extra {
		w("%s", l)
	}
	s.conf = filepath.Join(s.Dir, "redis.conf")
	return os.WriteFile(s.conf, []byte(b.String()), 0o600)
}

// quote makes a redis.conf string argument.
func quote(s string) string { return strconv.Quote(s) }

// start launches the process and waits until PING answers.
func (s *Server) start() error {
	args := []string{s.conf}
	if s.sentinel {
		args = append(args, "--sentinel")
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.Dir
	// stdout/stderr only carry early start-up failures; the rest goes to redis.log.
	out, err := os.OpenFile(filepath.Join(s.Dir, "redis.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.paused = cmd, done, false
	s.mu.Unlock()

	if err := s.waitReady(done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		return err
	}
	return nil
}

func (s *Server) waitReady(done chan struct{}) error {
	c := redis.NewClient(s.options(1))
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited during start-up:\n%s", s.Port, s.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		lastErr = c.Ping(ctx).Err()
		cancel()
		if lastErr == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on port %d did not answer PING within %v (last error: %v):\n%s",
		s.Port, startTimeout, lastErr, s.logTail())
}

func (s *Server) logTail() string {
	var parts []string
	for _, f := range []string{"redis.out", "redis.log"} {
		b, _ := os.ReadFile(filepath.Join(s.Dir, f))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		if t := strings.TrimSpace(strings.Join(lines, "\n")); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, "\n")
}

// TLSConfig is a client TLS configuration trusting the server's CA (nil without TLS).
func (s *Server) TLSConfig() *tls.Config {
	if !s.TLS {
		return nil
	}
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(s.CAFile); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Options are go-redis options for the ACL user (with TLS when the server has it).
func (s *Server) Options() *redis.Options { return s.options(2) }

func (s *Server) options(retries int) *redis.Options {
	return &redis.Options{
		Addr:            s.Addr,
		Username:        s.Username,
		Password:        s.Password,
		TLSConfig:       s.TLSConfig(),
		DialTimeout:     time.Second,
		DialerRetries:   1,
		MaxRetries:      retries,
		DisableIdentity: true,
	}
}

// Client returns a new client authenticated as the ACL user; it is closed by Close.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(s.Options())
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	return c
}

// Flush deletes every key (FLUSHALL), e.g. between tests sharing a server.
func (s *Server) Flush() error {
	c := redis.NewClient(s.Options())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.FlushAll(ctx).Err()
}

// Running reports whether the process is alive (a paused one counts as running).
func (s *Server) Running() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Stop saves the data set (SAVE, to dump.rdb in Dir) and stops the server (SIGTERM,
// SIGKILL after 10s). Restart loads the saved data. Stopping a stopped server is a no-op.
func (s *Server) Stop() {
	s.stop(true)
}

// Kill stops the server abruptly (SIGKILL) without saving: a Restart starts with the
// data of the last Stop (or empty), like a crash.
func (s *Server) Kill() {
	s.stop(false)
}

func (s *Server) stop(save bool) {
	s.mu.Lock()
	cmd, done, paused := s.cmd, s.done, s.paused
	s.paused = false
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	if !save {
		_ = cmd.Process.Kill()
		<-done
		return
	}
	c := redis.NewClient(s.options(-1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = c.Save(ctx).Err()
	cancel()
	_ = c.Close()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops the server (keeping its data, see Stop) if it runs and starts it again
// on the same port.
func (s *Server) Restart() error {
	s.Stop()
	var err error
	// The port was just released; a brief retry covers a slow socket teardown.
	for attempt := 0; attempt < 10; attempt++ {
		if err = s.start(); err == nil || !strings.Contains(err.Error(), "already in use") {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Pause freezes the server process (SIGSTOP): connections stay open but nothing is
// answered, like a hung server. Resume (or Stop, Kill, Close) undoes it.
func (s *Server) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && !s.paused {
		_ = s.cmd.Process.Signal(syscall.SIGSTOP)
		s.paused = true
	}
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.paused {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
		s.paused = false
	}
}

// Close kills the server, closes the clients made by Client and removes the temporary
// directory. It is safe to call more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	clients := s.clients
	s.clients = nil
	s.mu.Unlock()
	for _, c := range clients {
		_ = c.Close()
	}
	s.Kill()
	if s.removeDir {
		_ = os.RemoveAll(s.Dir)
	}
}
