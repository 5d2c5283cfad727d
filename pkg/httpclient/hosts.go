package httpclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrHostBusy is the transport error of a request that found its host's
// calls in flight at the HostLimiter's limit for longer than its wait. It is
// transient: the operation is retried later, holding nothing meanwhile.
var ErrHostBusy = errors.New("too many requests to this host are already in flight")

// HostLimiter bounds the requests in flight to each host, so that one dead or
// slow endpoint (every call to it waiting for its timeout) takes at most Max
// of the controller's calls and the others go on. One limiter is shared by
// every Client of the process that should count together. The zero value
// (Max 0) limits nothing.
type HostLimiter struct {
	// Max is the number of requests in flight to one host (host[:port] of
	// the URL); <= 0: no limit.
	Max int
	// Wait is how long a request waits for a free slot before failing with
	// ErrHostBusy; 0 fails at once.
	Wait time.Duration

	mu    sync.Mutex
	hosts map[string]*hostSlots
}

// hostSlots are the slots of one host; users counts the requests holding or
// waiting for one, so an idle host's entry is dropped.
type hostSlots struct {
	sem   chan struct{}
	users int
}

// acquire takes a slot for host, waiting at most l.Wait (or until ctx ends).
// It returns the function that gives the slot back.
func (l *HostLimiter) acquire(ctx context.Context, host string) (func(), error) {
	if l == nil || l.Max <= 0 {
		return func() {}, nil
	}
	s := l.join(host)
	release := func() { <-s.sem; l.leave(host, s) }
	select {
	case s.sem <- struct{}{}:
		return release, nil
	default:
	}
	if l.Wait > 0 {
		t := time.NewTimer(l.Wait)
		defer t.Stop()
		select {
		case s.sem <- struct{}{}:
			return release, nil
		case <-t.C:
		case <-ctx.Done():
		}
	}
	l.leave(host, s)
	return nil, fmt.Errorf("%w (%d; budgets.callsPerHost)", ErrHostBusy, l.Max)
}

func (l *HostLimiter) join(host string) *hostSlots {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hosts == nil {
		l.hosts = map[string]*hostSlots{}
	}
	s := l.hosts[host]
	if s == nil {
		s = &hostSlots{sem: make(chan struct{}, l.Max)}
		l.hosts[host] = s
	}
	s.users++
	return s
}

func (l *HostLimiter) leave(host string, s *hostSlots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s.users--
	if s.users == 0 && l.hosts[host] == s {
		delete(l.hosts, host)
	}
}

// InFlight returns the requests holding a slot for host (for tests and
// metrics).
func (l *HostLimiter) InFlight(host string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.hosts[host]; s != nil {
		return len(s.sem)
	}
	return 0
}
