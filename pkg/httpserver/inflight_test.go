package httpserver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type countingBody struct {
	r io.Reader
	n int
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func (c *countingBody) Close() error { return nil }

// TestLimitInFlight: with max requests running, one more is answered 503 with
// Retry-After and Connection: close at once, its body unread, and reported as
// http_inflight; once a request ends its slot serves the next one.
func TestLimitInFlight(t *testing.T) {
	const max = 3
	entered, release := make(chan struct{}), make(chan struct{})
	b := newBudgets()
	h := LimitInFlight(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-release
		}
		w.Write([]byte("done"))
	}), max, b.exceeded)
	var wg sync.WaitGroup
	for range max {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/hold", nil))
		}()
		<-entered
	}

	body := &countingBody{r: strings.NewReader(strings.Repeat("x", 1000))}
	req := httptest.NewRequest(http.MethodPost, "/hold", nil)
	req.Body = body
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || w.Header().Get("Connection") != "close" {
		t.Fatalf("over the limit: %d %v %q", w.Code, w.Header(), w.Body)
	}
	if body.n != 0 {
		t.Fatalf("%d body bytes read from a refused request", body.n)
	}
	if got := <-b.ch; got != BudgetInFlight {
		t.Fatalf("reported %q, want %q", got, BudgetInFlight)
	}

	close(release)
	wg.Wait()
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/quick", nil))
	if w.Code != http.StatusOK || w.Body.String() != "done" {
		t.Fatalf("after the held requests ended: %d %q", w.Code, w.Body)
	}
	if b.count() != 1 {
		t.Fatalf("%d refusals reported, want 1", b.count())
	}
}

// TestLimitInFlightOff: max 0 is no limit (the handler itself).
func TestLimitInFlightOff(t *testing.T) {
	h := http.NotFoundHandler()
	if got := LimitInFlight(h, 0, nil); got == nil || w(got).Code != http.StatusNotFound {
		t.Fatal("max 0 changed the handler")
	}
}

func w(h http.Handler) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return rec
}

// TestWithDeadline: the request's context ends at the deadline (the write
// timeout), so work started for it stops when its answer can no longer be
// written.
func TestWithDeadline(t *testing.T) {
	start := time.Now()
	var deadline time.Time
	var ok bool
	h := WithDeadline(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		deadline, ok = r.Context().Deadline()
	}), 10*time.Second)
	w(h)
	if !ok || deadline.Before(start.Add(10*time.Second)) || deadline.After(time.Now().Add(10*time.Second)) {
		t.Fatalf("deadline %v (set: %v), want 10s after the request started at %v", deadline, ok, start)
	}
}
