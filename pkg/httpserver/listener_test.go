package httpserver

import (
	"errors"
	"net"
	"sync"
	"testing"
)

// budgets records what a limit reported, and signals each report.
type budgets struct {
	mu  sync.Mutex
	got []string
	ch  chan string
}

func newBudgets() *budgets { return &budgets{ch: make(chan string, 100)} }

func (b *budgets) exceeded(name string) {
	b.mu.Lock()
	b.got = append(b.got, name)
	b.mu.Unlock()
	b.ch <- name
}

func (b *budgets) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.got)
}

// acceptor accepts from ln in the background and hands out what it accepted.
func acceptor(t *testing.T, ln net.Listener) <-chan net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(ch)
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ch
}

func dialFrom(t *testing.T, local string, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLimitPerClient: a client address gets at most max connections open; the
// excess is closed at accept (the server never sees it, the client reads EOF)
// and reported as http_connections_per_client; another address is not
// affected; closing a connection frees its slot, once however often it is
// closed, and a client without connections leaves nothing behind.
func TestLimitPerClient(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := newBudgets()
	ln := LimitPerClient(raw, 2, b.exceeded)
	pc := ln.(*perClient)
	accepted := acceptor(t, ln)

	dialFrom(t, "127.0.0.1", raw.Addr())
	dialFrom(t, "127.0.0.1", raw.Addr())
	first, second := <-accepted, <-accepted
	if n := pc.openConns("127.0.0.1"); n != 2 {
		t.Fatalf("%d connections counted, want 2", n)
	}

	third := dialFrom(t, "127.0.0.1", raw.Addr())
	if got := <-b.ch; got != BudgetConnsPerClient {
		t.Fatalf("reported %q, want %q", got, BudgetConnsPerClient)
	}
	// closed by the listener: the client reads EOF (or a reset), never data
	if n, err := third.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("the third connection of one client is open: %d, %v", n, err)
	}

	// another client address is not affected (Linux routes all of 127/8 to lo)
	dialFrom(t, "127.0.0.2", raw.Addr())
	other := <-accepted
	if got := clientAddr(other.RemoteAddr()); got != "127.0.0.2" {
		t.Fatalf("accepted %s, want the connection of 127.0.0.2", got)
	}

	// closing frees the slot, once
	first.Close()
	first.Close()
	if n := pc.openConns("127.0.0.1"); n != 1 {
		t.Fatalf("%d connections counted after a double close, want 1", n)
	}
	dialFrom(t, "127.0.0.1", raw.Addr())
	fourth := <-accepted
	if n := pc.openConns("127.0.0.1"); n != 2 {
		t.Fatalf("%d connections counted, want 2", n)
	}
	if b.count() != 1 {
		t.Fatalf("%d refusals reported, want 1", b.count())
	}

	second.Close()
	fourth.Close()
	other.Close()
	pc.mu.Lock()
	left := len(pc.open)
	pc.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d client entries left after every connection closed", left)
	}
}

// TestLimitPerClientOff: max 0 is no limit (the listener itself).
func TestLimitPerClientOff(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if ln := LimitPerClient(raw, 0, nil); ln != raw {
		t.Fatalf("max 0 wrapped the listener: %T", ln)
	}
}

// TestLimitPerClientPassesErrors: Accept errors (a closed listener) end Accept.
func TestLimitPerClientPassesErrors(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitPerClient(raw, 1, nil)
	ln.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed listener: %v", err)
	}
}

func TestClientAddr(t *testing.T) {
	for addr, want := range map[net.Addr]string{
		&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5}:  "10.1.2.3",
		&net.TCPAddr{IP: net.ParseIP("fd00::1"), Port: 443}: "fd00::1",
		&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}:     "/run/x.sock",
	} {
		if got := clientAddr(addr); got != want {
			t.Errorf("clientAddr(%v) = %q, want %q", addr, got, want)
		}
	}
}
