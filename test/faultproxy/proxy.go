// Package faultproxy is a TCP proxy for fault tests: it forwards connections
// from a loopback port to an upstream address and delays every chunk it
// reads, so that a fast server (Redis) answers slowly.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections to Upstream. Every read from the upstream
// is held for Delay before it is passed on (ResponseDelay); reads from the
// client are held for RequestDelay. Zero delays forward at once.
type Proxy struct {
	Upstream      string
	ResponseDelay time.Duration
	RequestDelay  time.Duration

	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool

	accepted  atomic.Int64
	delayed   atomic.Int64 // chunks held for a delay
	upBytes   atomic.Int64 // client -> upstream
	downBytes atomic.Int64 // upstream -> client
}

// Stats are counters since Start.
type Stats struct {
	Conns         int64 // connections accepted
	DelayedReads  int64 // chunks held for a delay (both directions)
	BytesUpstream int64 // forwarded client -> upstream
	BytesToClient int64 // forwarded upstream -> client
}

// Start listens on addr ("127.0.0.1:0" picks a free loopback port) and
// serves until Close.
func Start(addr, upstream string, responseDelay time.Duration) (*Proxy, error) {
	p := &Proxy{Upstream: upstream, ResponseDelay: responseDelay}
	return p, p.Listen(addr)
}

// Listen starts serving on addr.
func (p *Proxy) Listen(addr string) error {
	if p.Upstream == "" {
		return errors.New("faultproxy: no upstream address")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	p.ln = ln
	p.conns = map[net.Conn]struct{}{}
	p.wg.Add(1)
	go p.serve()
	return nil
}

// Addr is the host:port the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the port the proxy listens on.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	return Stats{Conns: p.accepted.Load(), DelayedReads: p.delayed.Load(),
		BytesUpstream: p.upBytes.Load(), BytesToClient: p.downBytes.Load()}
}

// Close stops listening, closes every connection and waits for the
// forwarding goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	up, err := net.DialTimeout("tcp", p.Upstream, 5*time.Second)
	if err != nil {
		return // the client sees the connection closed, as with a dead server
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, client, p.RequestDelay, &p.upBytes); done <- struct{}{} }()
	go func() { p.pipe(client, up, p.ResponseDelay, &p.downBytes); done <- struct{}{} }()
	<-done // one side ended: end both
	client.Close()
	up.Close()
	<-done
}

// pipe copies src to dst, holding every chunk read for delay.
func (p *Proxy) pipe(dst, src net.Conn, delay time.Duration, n *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if delay > 0 {
				p.delayed.Add(1)
				time.Sleep(delay)
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
			n.Add(int64(k))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			}
			return
		}
	}
}
