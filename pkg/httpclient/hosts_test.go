package httpclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
)

// TestHostLimiterBoundsCallsInFlightPerHost: with Max 2, two calls hang on a
// slow host; a third to the same host fails at once with a transient
// ErrHostBusy and reaches no server, while a call to another host goes
// through; once the slow calls end, the host takes calls again.
func TestHostLimiterBoundsCallsInFlightPerHost(t *testing.T) {
	release := make(chan struct{})
	var arrived sync.WaitGroup
	arrived.Add(2)
	slow, hits := server(t, func(n int32, w http.ResponseWriter, _ *http.Request) {
		if n < 2 {
			arrived.Done()
			<-release
		}
	})
	other, _ := server(t, func(int32, http.ResponseWriter, *http.Request) {})
	limit := &httpclient.HostLimiter{Max: 2}
	c := fast()
	c.Timeout = 30 * time.Second
	c.Hosts = limit

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Do(context.Background(), httpclient.Request{URL: slow.URL})
			errs <- err
		}()
	}
	arrived.Wait()
	host := mustHost(t, slow.URL)
	if n := limit.InFlight(host); n != 2 {
		t.Fatalf("%d calls in flight to the slow host, want 2", n)
	}

	_, err := c.Do(context.Background(), httpclient.Request{URL: slow.URL})
	var he *httpclient.Error
	if !errors.As(err, &he) || !errors.Is(err, httpclient.ErrHostBusy) || !he.Transient() {
		t.Fatalf("third call to the busy host: %v, want a transient ErrHostBusy", err)
	}
	if he.Host != host || he.Status != 0 {
		t.Errorf("error %+v", he)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("the busy host received %d requests, want 2 (the refused one sends nothing)", n)
	}
	if _, err := c.Do(context.Background(), httpclient.Request{URL: other.URL}); err != nil {
		t.Fatalf("a call to another host: %v", err)
	}

	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a slow call failed: %v", err)
		}
	}
	if _, err := c.Do(context.Background(), httpclient.Request{URL: slow.URL}); err != nil {
		t.Fatalf("after the slow calls ended: %v", err)
	}
	if n := limit.InFlight(host); n != 0 {
		t.Errorf("%d calls still counted in flight", n)
	}
}

// TestHostLimiterWaitsForASlot: a call that finds the host full waits up to
// Wait and goes through when a slot frees in time.
func TestHostLimiterWaitsForASlot(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	s, hits := server(t, func(n int32, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			arrived <- struct{}{}
			<-release
		}
	})
	c := fast()
	c.Hosts = &httpclient.HostLimiter{Max: 1, Wait: time.Minute}
	first := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), httpclient.Request{URL: s.URL})
		first <- err
	}()
	<-arrived
	second := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), httpclient.Request{URL: s.URL})
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("the second call ended (%v) while the only slot was taken", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the waiting call: %v", err)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func mustHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
