package cloudevents

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
)

// sink is a CloudEvents receiver answering with the statuses of replies in
// turn (then 202), recording the events it was sent.
type sink struct {
	srv      *httptest.Server
	mu       sync.Mutex
	replies  []int
	attempts atomic.Int32
	got      chan receivedEvent
}

type receivedEvent struct {
	typ, subject, source, id, contentType string
	data                                  []byte
}

func newSink(t *testing.T, replies ...int) *sink {
	s := &sink{replies: replies, got: make(chan receivedEvent, 100)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.attempts.Add(1)
		s.mu.Lock()
		status := http.StatusAccepted
		if len(s.replies) > 0 {
			status, s.replies = s.replies[0], s.replies[1:]
		}
		s.mu.Unlock()
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			t.Errorf("not a CloudEvent: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if status < 300 {
			s.got <- receivedEvent{typ: ev.Type(), subject: ev.Subject(), source: ev.Source(), id: ev.ID(), contentType: ev.DataContentType(), data: ev.Data()}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) next(t *testing.T) receivedEvent {
	t.Helper()
	select {
	case ev := <-s.got:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("the sink received no event")
		return receivedEvent{}
	}
}

func newEmitter(t *testing.T, s Settings) (*Emitter, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	e, err := New(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	e.Backoff, e.MaxBackoff = time.Millisecond, 4*time.Millisecond
	e.Configure(s)
	return e, m
}

func run(t *testing.T, e *Emitter) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestEmitSendsOverTheHTTPBinding(t *testing.T) {
	s := newSink(t)
	e, m := newEmitter(t, Settings{Sink: s.srv.URL})
	run(t, e)
	entry := history.Entry{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Op: "set", Who: history.Who{Namespace: "team-a", CustomRun: "set-1"},
		Changes: []history.Change{{Path: "state.version", New: `"1.2"`}}}
	if !e.Emit(TypeContextChanged, "team-a/ctx-1", entry) {
		t.Fatal("Emit did not queue the event")
	}
	ev := s.next(t)
	if ev.typ != TypeContextChanged || ev.subject != "team-a/ctx-1" || ev.source != Source || ev.id == "" || ev.contentType != "application/json" {
		t.Fatalf("event = %+v", ev)
	}
	var back history.Entry
	if err := json.Unmarshal(ev.data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Op != "set" || back.Who.CustomRun != "set-1" || len(back.Changes) != 1 || back.Changes[0].New != `"1.2"` {
		t.Fatalf("data = %s", ev.data)
	}
	waitFor(t, func() bool { return testutil.ToFloat64(m.sentTotal.WithLabelValues(TypeContextChanged)) == 1 })
}

func TestNoSinkEmitsNothing(t *testing.T) {
	e, m := newEmitter(t, Settings{})
	if e.Emit(TypeGateWaiting, "a/b", Gate{}) {
		t.Fatal("an event was queued with no sink")
	}
	if e.Queued() != 0 || testutil.ToFloat64(m.droppedTotal.WithLabelValues(TypeGateWaiting)) != 0 {
		t.Fatal("an event without a sink was queued or counted as dropped")
	}
	var nilEmitter *Emitter
	if nilEmitter.Emit(TypeGateWaiting, "a/b", Gate{}) {
		t.Fatal("a nil emitter queued an event")
	}
	nilEmitter.Configure(Settings{Sink: "http://x"})
}

// With no worker running, the queue fills: further events are dropped and
// counted, and Emit returns at once (a blocked Emit would hang this test).
func TestFullQueueDropsAndNeverBlocks(t *testing.T) {
	e, m := newEmitter(t, Settings{Sink: "http://127.0.0.1:1", QueueSize: 3})
	done := make(chan int)
	go func() {
		queued := 0
		for range 10 {
			if e.Emit(TypeContextChanged, "a/b", map[string]int{"n": 1}) {
				queued++
			}
		}
		done <- queued
	}()
	select {
	case queued := <-done:
		if queued != 3 || e.Queued() != 3 {
			t.Fatalf("queued %d (queue holds %d), want 3", queued, e.Queued())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Emit blocked on a full queue")
	}
	if got := testutil.ToFloat64(m.droppedTotal.WithLabelValues(TypeContextChanged)); got != 7 {
		t.Fatalf("dropped = %v, want 7", got)
	}
	// a smaller queue drops the oldest beyond it
	e.Configure(Settings{Sink: "http://127.0.0.1:1", QueueSize: 1})
	if e.Queued() != 1 || testutil.ToFloat64(m.droppedTotal.WithLabelValues(TypeContextChanged)) != 9 {
		t.Fatalf("after shrinking: queued %d", e.Queued())
	}
}

func TestRetriesUntilAccepted(t *testing.T) {
	s := newSink(t, http.StatusServiceUnavailable, http.StatusTooManyRequests)
	e, m := newEmitter(t, Settings{Sink: s.srv.URL, MaxAttempts: 3})
	run(t, e)
	e.Emit(TypeGateDecided, "a/b", Gate{State: "Approved"})
	if ev := s.next(t); ev.typ != TypeGateDecided {
		t.Fatalf("event = %+v", ev)
	}
	waitFor(t, func() bool { return testutil.ToFloat64(m.sentTotal.WithLabelValues(TypeGateDecided)) == 1 })
	if n := s.attempts.Load(); n != 3 {
		t.Fatalf("attempts = %d, want 3", n)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	s := newSink(t, 500, 500, 500, 500, 500)
	e, m := newEmitter(t, Settings{Sink: s.srv.URL, MaxAttempts: 3})
	run(t, e)
	e.Emit(TypeGateWaiting, "a/b", Gate{State: "Pending"})
	waitFor(t, func() bool { return testutil.ToFloat64(m.failedTotal.WithLabelValues(TypeGateWaiting)) == 1 })
	if n := s.attempts.Load(); n != 3 {
		t.Fatalf("attempts = %d, want 3", n)
	}
}

func TestRefusedEventIsNotRetried(t *testing.T) {
	s := newSink(t, http.StatusBadRequest, http.StatusBadRequest)
	e, m := newEmitter(t, Settings{Sink: s.srv.URL, MaxAttempts: 5})
	run(t, e)
	e.Emit(TypeGateWaiting, "a/b", Gate{State: "Pending"})
	waitFor(t, func() bool { return testutil.ToFloat64(m.failedTotal.WithLabelValues(TypeGateWaiting)) == 1 })
	if n := s.attempts.Load(); n != 1 {
		t.Fatalf("attempts = %d, want 1", n)
	}
}

// A dead sink costs the worker its attempts; events queue behind it and
// Emit stays immediate.
func TestDeadSinkFailsAndCounts(t *testing.T) {
	s := newSink(t)
	dead := s.srv.URL
	s.srv.Close()
	e, m := newEmitter(t, Settings{Sink: dead, MaxAttempts: 2})
	run(t, e)
	for range 3 {
		e.Emit(TypeContextChanged, "a/b", 1)
	}
	waitFor(t, func() bool { return testutil.ToFloat64(m.failedTotal.WithLabelValues(TypeContextChanged)) == 3 })
	if testutil.ToFloat64(m.sentTotal.WithLabelValues(TypeContextChanged)) != 0 {
		t.Fatal("an event to a dead sink was counted sent")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
