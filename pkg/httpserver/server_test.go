package httpserver

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlackLimits: the documented defaults of the Slack listener
// (docs/security.md, "HTTP server").
func TestSlackLimits(t *testing.T) {
	want := Limits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10, MaxInFlight: 64, MaxConnsPerClient: 16}
	if got := SlackLimits(); got != want {
		t.Fatalf("SlackLimits() = %+v, want %+v", got, want)
	}
	srv := Server(http.NotFoundHandler(), want, nil)
	if srv.ReadHeaderTimeout != want.ReadHeaderTimeout || srv.ReadTimeout != want.ReadTimeout || srv.WriteTimeout != want.WriteTimeout ||
		srv.IdleTimeout != want.IdleTimeout || srv.MaxHeaderBytes != want.MaxHeaderBytes {
		t.Fatalf("Server does not carry the limits: %+v", srv)
	}
	if p := ProbeLimits(); p.ReadTimeout == 0 || p.WriteTimeout == 0 || p.ReadHeaderTimeout == 0 || p.IdleTimeout == 0 {
		t.Fatalf("ProbeLimits has an unbounded timeout: %+v", p)
	}
}

// serve runs Server(h, l) on a per-client-limited listener of 127.0.0.1.
func serve(t *testing.T, h http.Handler, l Limits, exceeded func(string)) string {
	t.Helper()
	ln, err := Listen("127.0.0.1:0", l, exceeded)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, Server(h, l, exceeded), ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestSlowClientsAreCut: a client that never finishes its headers, and one
// that never finishes its body, are disconnected by the server's timeouts
// (short ones here); the handler saw no complete body. A read that never
// ended would hang the test.
func TestSlowClientsAreCut(t *testing.T) {
	bodies := make(chan int, 10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			bodies <- -len(b) - 1
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		bodies <- len(b)
	})
	l := Limits{ReadHeaderTimeout: 50 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, WriteTimeout: time.Second,
		IdleTimeout: time.Second, MaxHeaderBytes: 4 << 10}
	addr := serve(t, h, l, nil)

	headers, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer headers.Close()
	io.WriteString(headers, "POST /slack/interactions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	if rest, _ := io.ReadAll(headers); strings.Contains(string(rest), "200 OK") {
		t.Fatalf("a request without the end of its headers was answered: %q", rest)
	}

	body, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	io.WriteString(body, "POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
	resp, err := http.ReadResponse(bufio.NewReader(body), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("a request with 3 of its 100 body bytes was answered 200")
		}
	}
	if n := <-bodies; n >= 0 {
		t.Fatalf("the handler read a whole body of %d bytes", n)
	}
}

// TestServeAppliesEveryLimit: through a real server, the per-client cap
// closes the excess connection at accept and the in-flight cap answers 503.
func TestServeAppliesEveryLimit(t *testing.T) {
	entered, release := make(chan struct{}, 10), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	b := newBudgets()
	l := SlackLimits()
	l.MaxInFlight, l.MaxConnsPerClient = 1, 2
	l.ReadHeaderTimeout = time.Minute // the silent connections below stay open for the test
	addr := serve(t, h, l, b.exceeded)
	defer close(release)

	dial := func(local, request string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
		return c
	}
	const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	dial("127.0.0.1", get)
	<-entered // the one slot is taken
	// a second, silent connection of 127.0.0.1 is accepted (connections are
	// accepted in order) and a third is closed at accept
	dial("127.0.0.1", "")
	third := dial("127.0.0.1", "")
	if n, err := third.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("the third connection of a client with a cap of 2: %d %v", n, err)
	}
	if got := <-b.ch; got != BudgetConnsPerClient {
		t.Fatalf("reported %q, want %q", got, BudgetConnsPerClient)
	}

	// another client: accepted, but the one request slot is taken
	resp, err := http.ReadResponse(bufio.NewReader(dial("127.0.0.2", get)), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a request with no slot free: %d %v", resp.StatusCode, resp.Header)
	}
	if got := <-b.ch; got != BudgetInFlight {
		t.Fatalf("reported %q, want %q", got, BudgetInFlight)
	}
}
