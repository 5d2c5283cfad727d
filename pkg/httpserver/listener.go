package httpserver

import (
	"net"
	"sync"
)

// LimitPerClient wraps ln so that one client address (the remote IP, port
// ignored) has at most max connections open at once. A connection over the
// limit is closed as it is accepted, before a byte of it is read, and reported
// to exceeded as BudgetConnsPerClient; Accept then waits for the next one, so
// the server never sees it. max <= 0 returns ln unchanged (no limit).
//
// This stops one client from holding many slow connections (slow-loris).
// Behind a proxy or an ingress every client shares the proxy's address, and
// the limit applies to all of them together: raise it or turn it off (0)
// there.
func LimitPerClient(ln net.Listener, max int, exceeded func(string)) net.Listener {
	if max <= 0 {
		return ln
	}
	return &perClient{Listener: ln, max: max, exceeded: exceeded, open: map[string]int{}}
}

type perClient struct {
	net.Listener
	max      int
	exceeded func(string)

	mu   sync.Mutex
	open map[string]int // connections open per client address; no zero entries
}

// Accept returns the next connection of a client under its limit.
func (l *perClient) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := clientAddr(c.RemoteAddr())
		if !l.take(addr) {
			c.Close()
			report(l.exceeded, BudgetConnsPerClient)
			continue
		}
		return &countedConn{Conn: c, release: func() { l.release(addr) }}, nil
	}
}

func (l *perClient) take(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[addr] >= l.max {
		return false
	}
	l.open[addr]++
	return true
}

func (l *perClient) release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// delete at zero: the map holds only clients with open connections, so
	// it cannot grow with the number of addresses ever seen.
	if l.open[addr] <= 1 {
		delete(l.open, addr)
	} else {
		l.open[addr]--
	}
}

// openConns is the number of connections open for addr (tests).
func (l *perClient) openConns(addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[addr]
}

// clientAddr is the IP of a TCP peer, or the whole address for other kinds.
func clientAddr(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// countedConn gives its slot back once, however often it is closed (the HTTP
// server may close a connection more than once).
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
