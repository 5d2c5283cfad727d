package faultproxy

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// echo serves a line echo server on a loopback port.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func TestProxyDelaysResponsesAndForwardsBytesIntact(t *testing.T) {
	const delay = 40 * time.Millisecond
	p, err := Start("127.0.0.1:0", echo(t), delay)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for i, msg := range []string{"PING\r\n", "a longer line with bytes \x00\xff\r\n", "x\r\n"} {
		start := time.Now()
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Fatalf("round trip %d: got %q, want %q", i, got, msg)
		}
		if d := time.Since(start); d < delay {
			t.Fatalf("round trip %d took %s, want at least the delay %s", i, d, delay)
		}
	}
	// the proxy counts a reply after writing it: give the last count a moment
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := p.Stats()
		if s.Conns == 1 && s.DelayedReads >= 3 && s.BytesToClient == s.BytesUpstream {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProxyClosesClientWhenUpstreamIsDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	p, err := Start("127.0.0.1:0", dead, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a proxy with a dead upstream succeeded")
	}
}

func TestCloseEndsOpenConnections(t *testing.T) {
	p, err := Start("127.0.0.1:0", echo(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "hi\n")
	bufio.NewReader(c).ReadString('\n')
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a connection open")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection is still open after Close")
	}
}
