package reconciler

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	fakekube "k8s.io/client-go/kubernetes/fake"
	testclock "k8s.io/utils/clock/testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/cloudevents"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
)

type sinkEvent struct {
	typ, subject string
	gate         cloudevents.Gate
}

// startSink runs an emitter sending to a local CloudEvents sink.
func startSink(t *testing.T) (*cloudevents.Emitter, <-chan sinkEvent) {
	t.Helper()
	got := make(chan sinkEvent, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			t.Errorf("not a CloudEvent: %v", err)
			return
		}
		var g cloudevents.Gate
		if err := json.Unmarshal(ev.Data(), &g); err != nil {
			t.Errorf("data %s: %v", ev.Data(), err)
		}
		got <- sinkEvent{typ: ev.Type(), subject: ev.Subject(), gate: g}
	}))
	t.Cleanup(srv.Close)
	e, err := cloudevents.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Configure(cloudevents.Settings{Sink: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go e.Run(ctx)
	return e, got
}

func nextEvent(t *testing.T, got <-chan sinkEvent) sinkEvent {
	t.Helper()
	select {
	case ev := <-got:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("the sink received no event")
		return sinkEvent{}
	}
}

// TestGateEvents: a gate that opens sends gate.waiting once (not again on the
// next reconciles), its decision gate.decided with the outcome; a gate that
// times out unanswered sends gate.decided with state TimedOut.
func TestGateEvents(t *testing.T) {
	ep := newEndpoint(t)
	src, choices := eventsSource(t, ep.srv.URL)
	events, got := startSink(t)
	clk := testclock.NewFakeClock(now)
	r := &Reconciler{Clock: clk, Source: src, KubeClient: fakekube.NewSimpleClientset(), CloudEvents: events}
	run := parseRun(t, eventRun(t, "uid-gate", "gate"))
	r.ReconcileKind(context.Background(), run)
	r.ReconcileKind(context.Background(), run) // still waiting: no second gate.waiting
	ev := nextEvent(t, got)
	if ev.typ != cloudevents.TypeGateWaiting || ev.subject != "ns/ctx-1" || ev.gate.State != "Pending" || ev.gate.Key != "uid-gate" ||
		ev.gate.CustomRun != "run" || ev.gate.Title != "pick" || len(ev.gate.Options) != 2 || ev.gate.Options[1].Value != "b" {
		t.Fatalf("waiting event %+v", ev)
	}
	if _, _, err := choices.Decide(context.Background(), gate.Lookup{SlackChannel: "C1", SlackTS: "1.2"}, gate.Decision{Choice: "b", ChosenBy: "alice", Via: gate.ViaSlack}); err != nil {
		t.Fatal(err)
	}
	r.ReconcileKind(context.Background(), run)
	ev = nextEvent(t, got)
	if ev.typ != cloudevents.TypeGateDecided || ev.subject != "ns/ctx-1" || ev.gate.State != "Approved" || ev.gate.Choice != "b" ||
		ev.gate.ChosenBy != "alice" || ev.gate.Via != gate.ViaSlack || ev.gate.DecidedAt == nil {
		t.Fatalf("decided event %+v", ev)
	}

	waiting := parseRun(t, eventRun(t, "uid-gate-2", "gate"))
	r.ReconcileKind(context.Background(), waiting)
	if ev = nextEvent(t, got); ev.typ != cloudevents.TypeGateWaiting || ev.gate.Key != "uid-gate-2" {
		t.Fatalf("second waiting event %+v", ev)
	}
	clk.Step(2 * time.Minute)
	r.ReconcileKind(context.Background(), waiting)
	if ev = nextEvent(t, got); ev.typ != cloudevents.TypeGateDecided || ev.gate.State != "TimedOut" || ev.gate.Choice != "" {
		t.Fatalf("timed-out event %+v", ev)
	}
	select {
	case ev := <-got:
		t.Fatalf("an extra event %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}
