package reconciler

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	fakekube "k8s.io/client-go/kubernetes/fake"
	testclock "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

const eventsApp = `cicd-contexts:
  stage:
    channel: c1
    pipelines:
      p:
        event-handlers:
          note:
            notify: {message: "hello {{ state.k }}"}
          gate:
            manual-choice:
              title: pick
              wait: true
              choices:
                only: {header: h, options: [{text: A, value: a}, {text: B, value: b}]}
`

// endpoint answers like Slack's chat.postMessage with the given status.
type endpoint struct {
	srv    *httptest.Server
	hits   atomic.Int32
	status atomic.Int32
}

func newEndpoint(t *testing.T) *endpoint {
	e := &endpoint{}
	e.status.Store(200)
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		w.WriteHeader(int(e.status.Load()))
		fmt.Fprint(w, `{"ok": true, "channel": "C1", "ts": "1.2"}`)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func eventsSource(t *testing.T, url string) (staticSource, *gate.Store) {
	t.Helper()
	return eventsSourceWith(t, url, eventsApp, "cicdstatemgr:\n  slack: {token: tok}\n")
}

// eventsSourceWith is eventsSource with the context's app config and
// secrets.yaml's text.
func eventsSourceWith(t *testing.T, url, app, secrets string) (staticSource, *gate.Store) {
	t.Helper()
	st, err := store.New(store.Options{Addr: redisSrv.Addr, Username: redisSrv.Username, Password: redisSrv.Password,
		KeyPrefix: "ev-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg, err := config.Parse([]byte(fmt.Sprintf(`cicdstatemgr:
  datasources: {redis: {host: 127.0.0.1}}
  slack: {url: %q}
  templates:
    notify: '{"text": "{{ notify.message }}"}'
    manual-choice: '{"text": "{{ manualChoice.title }}"}'
`, url)), []byte(secrets))
	if err != nil {
		t.Fatal(err)
	}
	r := tmpl.New(tmpl.Options{})
	choices := gate.New(st)
	runner := handlers.NewRunner(st, r, nil, handlers.WithGates(choices),
		handlers.WithHTTPClient(&httpclient.Client{Attempts: 2, Backoff: time.Millisecond}))
	eng := &engine.Engine{Store: st, Templates: r, Handlers: runner, Gates: choices}
	if _, err := eng.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpInit, ID: "ctx-1", Config: cfg, AppConfig: []byte(app),
		Sets: []document.Assignment{{Path: "state.k", Value: "v"}}}); err != nil {
		t.Fatal(err)
	}
	return staticSource{eng: eng, cfg: cfg}, choices
}

func eventRun(t *testing.T, uid, event string) string {
	return fmt.Sprintf(header, uid) + fmt.Sprintf(`  timeout: 1m
  params: [{name: op, value: handle-event}, {name: id, value: ctx-1}, {name: event, value: "p=%s"}]`, event)
}

func resultOf(t *testing.T, y string, r *Reconciler) (map[string]string, *apis.Condition, error) {
	t.Helper()
	run := parseRun(t, y)
	ev := r.ReconcileKind(context.Background(), run)
	out := map[string]string{}
	for _, res := range run.Status.Results {
		out[res.Name] = res.Value
	}
	return out, run.Status.GetCondition(apis.ConditionSucceeded), ev
}

// TestHandleEventPostsOnceUnderRepeatedReconciles: the same CustomRun
// reconciled again (fresh copies, as after a lost status update) never
// posts the notification twice.
func TestHandleEventPostsOnceUnderRepeatedReconciles(t *testing.T) {
	ep := newEndpoint(t)
	src, _ := eventsSource(t, ep.srv.URL)
	r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset()}
	y := eventRun(t, "uid-note", "note")
	for i := 0; i < 3; i++ {
		res, c, _ := resultOf(t, y, r)
		if !c.IsTrue() || !strings.Contains(res["handled"], `"status":"sent"`) || res["choice"] != "" {
			t.Fatalf("reconcile %d: %+v %v", i, c, res)
		}
	}
	if n := ep.hits.Load(); n != 1 {
		t.Fatalf("the endpoint got %d posts, want 1", n)
	}
}

func TestHandleEventFailureModes(t *testing.T) {
	cases := []struct {
		status  int
		reason  string
		cond    corev1.ConditionStatus
		requeue bool
	}{
		{404, engine.ReasonEventHandlerFailed, corev1.ConditionFalse, false},
		{503, ReasonRetrying, corev1.ConditionUnknown, true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			ep := newEndpoint(t)
			ep.status.Store(int32(c.status))
			src, _ := eventsSource(t, ep.srv.URL)
			r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset()}
			run := parseRun(t, eventRun(t, "uid-f", "note"))
			ev := r.ReconcileKind(context.Background(), run)
			checkStatus(t, run, wantStatus{status: c.cond, reason: c.reason, message: "", requeue: c.requeue}, ev)
			if strings.Contains(run.Status.GetCondition(apis.ConditionSucceeded).Message, "tok") {
				t.Error("the slack token leaked into the message")
			}
		})
	}
	t.Run("unknown event", func(t *testing.T) {
		ep := newEndpoint(t)
		src, _ := eventsSource(t, ep.srv.URL)
		r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset()}
		run := parseRun(t, eventRun(t, "uid-u", "nope"))
		ev := r.ReconcileKind(context.Background(), run)
		checkStatus(t, run, wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonUnknownEvent, message: "note, gate"}, ev)
		// a failed handle-event still has every result a pipeline may read
		var names []string
		for _, res := range run.Status.Results {
			names = append(names, res.Name)
		}
		if got, want := strings.Join(names, ","), "id,handled,choice,chosen-by,reason,decided-at"; got != want {
			t.Errorf("results %s, want %s", got, want)
		}
	})
}

// TestApprovalGate: the run waits until a decision, then records it and
// succeeds with choice and chosen-by; a timed-out wait closes the gate.
func TestApprovalGate(t *testing.T) {
	ep := newEndpoint(t)
	src, choices := eventsSource(t, ep.srv.URL)
	clk := testclock.NewFakeClock(now)
	r := &Reconciler{Clock: clk, Source: src, KubeClient: fakekube.NewSimpleClientset()}
	y := eventRun(t, "uid-gate", "gate")
	run := parseRun(t, y)
	ev := r.ReconcileKind(context.Background(), run)
	checkStatus(t, run, wantStatus{status: corev1.ConditionUnknown, reason: ReasonWaitingForDecision, message: "a, b", requeue: true}, ev)
	if nn, ok := r.WakeGate("uid-gate"); !ok || nn.Name != "run" {
		t.Fatalf("the waiting run is not registered for wake-ups: %v %v", nn, ok)
	}
	if _, _, err := choices.Decide(context.Background(), gate.Lookup{SlackChannel: "C1", SlackTS: "1.2"}, gate.Decision{Choice: "b", ChosenBy: "alice", Via: gate.ViaSlack}); err != nil {
		t.Fatal(err)
	}
	ev = r.ReconcileKind(context.Background(), run)
	checkStatus(t, run, wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{"choice": "b", "chosen-by": "alice"}}, ev)
	doc, err := src.eng.Store.Get(context.Background(), "ns/ctx-1")
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := document.Lookup(doc, "state.choices.p.gate.chosenBy"); v != "alice" {
		t.Fatalf("decision not recorded in the state: %v", v)
	}
	if n := ep.hits.Load(); n != 1 {
		t.Fatalf("the choice message was posted %d times", n)
	}

	// a second gate that nobody answers times out and is closed
	waiting := parseRun(t, eventRun(t, "uid-gate-2", "gate"))
	r.ReconcileKind(context.Background(), waiting)
	clk.Step(2 * time.Minute)
	ev = r.ReconcileKind(context.Background(), waiting)
	checkStatus(t, waiting, wantStatus{status: corev1.ConditionFalse, reason: ReasonTimedOut}, ev)
	if p, _, err := choices.Get(context.Background(), "uid-gate-2"); err != nil || p.CancelledAt.IsZero() {
		t.Fatalf("the timed-out gate is still open: %v %+v", err, p)
	}
}
