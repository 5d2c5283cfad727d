package reconciler

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"k8s.io/apimachinery/pkg/types"
	fakekube "k8s.io/client-go/kubernetes/fake"
	testclock "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/controller"
)

// hangGuard bounds how long a test waits for something that must happen; it
// only turns a hang into a failure and measures nothing.
const hangGuard = 30 * time.Second

// slowEndpoint answers like Slack's chat.postMessage once release is closed;
// gone counts requests whose caller gave up (context cancelled).
type slowEndpoint struct {
	srv     *httptest.Server
	hits    atomic.Int32
	gone    atomic.Int32
	arrived chan struct{}
	release chan struct{}
}

func newSlowEndpoint(t *testing.T) *slowEndpoint {
	e := &slowEndpoint{arrived: make(chan struct{}, 16), release: make(chan struct{})}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		// read the body: only then does the server watch for the client
		// going away (and cancel r.Context())
		_, _ = io.Copy(io.Discard, r.Body)
		e.arrived <- struct{}{}
		select {
		case <-e.release:
			fmt.Fprint(w, `{"ok": true, "channel": "C1", "ts": "1.2"}`)
		case <-r.Context().Done():
			e.gone.Add(1)
		}
	}))
	t.Cleanup(func() {
		select {
		case <-e.release:
		default:
			close(e.release)
		}
		e.srv.Close()
	})
	return e
}

// reconcileAsAWorker runs ReconcileKind as a worker would and fails when it
// does not return (the worker stays held).
func reconcileAsAWorker(t *testing.T, r *Reconciler, run *v1beta1.CustomRun) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.ReconcileKind(context.Background(), run) }()
	select {
	case err := <-done:
		return err
	case <-time.After(hangGuard):
		t.Fatalf("ReconcileKind still holds the worker after %s", hangGuard)
		return nil
	}
}

func wantRequeue(t *testing.T, err error) {
	t.Helper()
	if ok, _ := controller.IsRequeueKey(err); !ok {
		t.Fatalf("reconcile returned %v, want a requeue", err)
	}
}

// TestSlowEndpointHoldsNoWorker: a handle-event op whose endpoint does not
// answer holds the reconcile for the inline wait only; the run stays Running
// (OpInProgress), a second reconcile neither waits nor sends again, another
// run is served meanwhile, and when the endpoint answers the run is enqueued
// and the next reconcile ends it Succeeded with the reply, sent once.
func TestSlowEndpointHoldsNoWorker(t *testing.T) {
	ep := newSlowEndpoint(t)
	src, _ := eventsSource(t, ep.srv.URL)
	enqueued := make(chan types.NamespacedName, 4)
	r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset(),
		InlineWait: 50 * time.Millisecond, enqueue: func(nn types.NamespacedName) { enqueued <- nn }}
	y := eventRun(t, "uid-slow", "note")

	run := parseRun(t, y)
	wantRequeue(t, reconcileAsAWorker(t, r, run))
	c := run.Status.GetCondition(apis.ConditionSucceeded)
	if c == nil || !c.IsUnknown() || c.Reason != ReasonOpInProgress {
		t.Fatalf("while the endpoint is slow: %+v, want Running with reason %s", c, ReasonOpInProgress)
	}
	<-ep.arrived

	again := parseRun(t, y)
	wantRequeue(t, reconcileAsAWorker(t, r, again))
	if c := again.Status.GetCondition(apis.ConditionSucceeded); c.Reason != ReasonOpInProgress {
		t.Fatalf("second reconcile: %+v", c)
	}

	other := parseRun(t, fmt.Sprintf(header, "uid-other")+`  params: [{name: op, value: get}, {name: id, value: ctx-1}, {name: get, value: [k=state.k]}]`)
	reconcileAsAWorker(t, r, other)
	if c := other.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() || other.Status.Results[1].Value != "v" {
		t.Fatalf("another run while the endpoint is slow: %+v %v", c, other.Status.Results)
	}

	close(ep.release)
	select {
	case nn := <-enqueued:
		if nn != (types.NamespacedName{Namespace: "ns", Name: "run"}) {
			t.Fatalf("enqueued %v", nn)
		}
	case <-time.After(hangGuard):
		t.Fatal("the run was not enqueued when its op ended")
	}
	done := parseRun(t, y)
	reconcileAsAWorker(t, r, done)
	c = done.Status.GetCondition(apis.ConditionSucceeded)
	if !c.IsTrue() {
		t.Fatalf("after the endpoint answered: %+v", c)
	}
	if res := done.Status.Results; len(res) < 2 || !strings.Contains(res[1].Value, `"status":"sent"`) {
		t.Fatalf("results %v", res)
	}
	if n := ep.hits.Load(); n != 1 {
		t.Fatalf("the endpoint got %d requests, want 1", n)
	}
	if r.opRunning(done) {
		t.Error("the op's outcome is still kept after the run took it")
	}
}

// TestCancelStopsARunningOp: cancelling a run whose op waits on an endpoint
// cancels the op (its request is abandoned) and ends the run Cancelled.
func TestCancelStopsARunningOp(t *testing.T) {
	ep := newSlowEndpoint(t)
	src, _ := eventsSource(t, ep.srv.URL)
	r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset(),
		InlineWait: 50 * time.Millisecond}
	y := eventRun(t, "uid-cancel", "note")
	run := parseRun(t, y)
	wantRequeue(t, reconcileAsAWorker(t, r, run))
	<-ep.arrived

	cancelled := parseRun(t, y)
	cancelled.Spec.Status = v1beta1.CustomRunSpecStatusCancelled
	reconcileAsAWorker(t, r, cancelled)
	if c := cancelled.Status.GetCondition(apis.ConditionSucceeded); !c.IsFalse() || c.Reason != ReasonCancelled {
		t.Fatalf("cancelled run: %+v", c)
	}
	deadline := time.Now().Add(hangGuard)
	for ep.gone.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if ep.gone.Load() != 1 {
		t.Fatal("the op's request was not abandoned when the run was cancelled")
	}
	if r.opRunning(cancelled) {
		t.Error("the cancelled run's op is still kept")
	}
}

// opRunning says whether this process keeps an op of the run's current
// attempt (running, or ended and not yet taken).
func (r *Reconciler) opRunning(run *v1beta1.CustomRun) bool { return r.ops.find(run) != nil }

// TestHandleEventsInFlightBounded: with one event slot, a second
// handle-event waits for the first (its handler sends nothing yet, and no
// worker waits for it) while other ops go on; when the endpoint answers both
// succeed, each having sent once.
func TestHandleEventsInFlightBounded(t *testing.T) {
	ep := newSlowEndpoint(t)
	src, _ := eventsSource(t, ep.srv.URL)
	src.eng.EventSlots = make(chan struct{}, 1)
	enqueued := make(chan types.NamespacedName, 4)
	r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset(),
		InlineWait: 50 * time.Millisecond, enqueue: func(nn types.NamespacedName) { enqueued <- nn }}

	first, second := eventRun(t, "uid-first", "note"), eventRun(t, "uid-second", "note")
	wantRequeue(t, reconcileAsAWorker(t, r, parseRun(t, first)))
	<-ep.arrived
	wantRequeue(t, reconcileAsAWorker(t, r, parseRun(t, second)))

	other := parseRun(t, fmt.Sprintf(header, "uid-other")+`  params: [{name: op, value: get}, {name: id, value: ctx-1}, {name: get, value: [k=state.k]}]`)
	reconcileAsAWorker(t, r, other)
	if c := other.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		t.Fatalf("a get while both event slots' worth of handle-events wait: %+v", c)
	}
	if n := ep.hits.Load(); n != 1 {
		t.Fatalf("%d calls reached the endpoint, want 1 (the second handle-event waits for the slot)", n)
	}

	close(ep.release)
	for range 2 {
		select {
		case <-enqueued:
		case <-time.After(hangGuard):
			t.Fatal("a handle-event was not enqueued when it ended")
		}
	}
	for _, y := range []string{first, second} {
		run := parseRun(t, y)
		reconcileAsAWorker(t, r, run)
		if c := run.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
			t.Fatalf("%s: %+v", run.UID, c)
		}
	}
	if n := ep.hits.Load(); n != 2 {
		t.Fatalf("the endpoint got %d calls, want 2", n)
	}
}
