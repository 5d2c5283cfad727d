package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"knative.dev/pkg/apis"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/cloudevents"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
)

// The CloudEvents tests: the controller sends context.changed, gate.waiting
// and gate.decided to the sink of config.yaml (cloudEvents.sink), here a
// CloudEvents receiver in the test process; a dead sink costs the ops
// nothing.

// ceSink is a CloudEvents receiver on loopback recording every event.
type ceSink struct {
	url    string
	mu     sync.Mutex
	events []sinkEvent
}

type sinkEvent struct {
	Type, Subject, Source string
	Data                  json.RawMessage
}

func startCESink(t *testing.T) *ceSink {
	t.Helper()
	s := &ceSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.events = append(s.events, sinkEvent{Type: ev.Type(), Subject: ev.Subject(), Source: ev.Source(), Data: ev.Data()})
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/events"
	return s
}

// await waits for an event of typ about subject that satisfies ok.
func (s *ceSink) await(t *testing.T, typ, subject string, ok func(json.RawMessage) bool) sinkEvent {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		var seen []string
		for _, ev := range s.events {
			if ev.Type == typ && ev.Subject == subject && ok(ev.Data) {
				s.mu.Unlock()
				return ev
			}
			if ev.Subject == subject {
				seen = append(seen, ev.Type+" "+string(ev.Data))
			}
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s event about %s; events about it:\n%s\n%s", typ, subject, strings.Join(seen, "\n"), controllerLogTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// withCloudEvents sets config.yaml's cloudEvents block for the test (the
// controller reloads it without a restart) and waits until the controller
// reports the sink configured; the original config.yaml is put back after.
func withCloudEvents(t *testing.T, block map[string]any) {
	t.Helper()
	// registered first, so it runs after withConfigYAML's restore
	t.Cleanup(func() {
		waitFor(t, 30*time.Second, "the sink unconfigured", func() bool { return metric(t, "cicdstatemgr_cloudevents_sink_configured") == 0 })
	})
	withConfigYAML(t, func(c map[string]any) { c["cloudEvents"] = block })
	waitFor(t, 30*time.Second, "the sink configured", func() bool { return metric(t, "cicdstatemgr_cloudevents_sink_configured") == 1 })
}

func entryOf(t *testing.T, data json.RawMessage) history.Entry {
	var e history.Entry
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("context.changed data %s: %v", data, err)
	}
	return e
}

func gateOf(t *testing.T, data json.RawMessage) cloudevents.Gate {
	var g cloudevents.Gate
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("gate data %s: %v", data, err)
	}
	return g
}

// TestCloudEventsOfAContextAndItsGate: an approval pipeline's init, a set
// and the gate's decision reach the sink as context.changed, the gate as
// gate.waiting then gate.decided, each about namespace/id. A secret set as
// a value reaches the sink redacted, beside the plain value of the same set.
func TestCloudEventsOfAContextAndItsGate(t *testing.T) {
	sink := startCESink(t)
	withCloudEvents(t, map[string]any{"sink": sink.url})
	startFakeSlackAPI(t)
	ns, name := startRelease(t, "ce", approvalPipeline("", "    - {name: approvers, value: [alice]}\n", ""))
	subject := ns + "/" + ns + "-ctx"

	ev := sink.await(t, cloudevents.TypeContextChanged, subject, func(d json.RawMessage) bool { return entryOf(t, d).Op == "init" })
	if e := entryOf(t, ev.Data); e.Who.Namespace != ns || !e.Touches("state.version") || ev.Source != cloudevents.Source {
		t.Errorf("init event %+v: %+v", ev, e)
	}
	ev = sink.await(t, cloudevents.TypeGateWaiting, subject, func(json.RawMessage) bool { return true })
	if g := gateOf(t, ev.Data); g.State != "Pending" || g.CustomRun != name || g.Namespace != ns || g.ContextID != ns+"-ctx" ||
		len(g.Options) != 2 || g.Options[0].Value != "ship" || g.Title != "Release 3.0.0?" {
		t.Errorf("gate.waiting data %s", ev.Data)
	}

	set := runOne(t, ns, customRun("set-1", "ce", time.Minute, strParam("op", "set"), strParam("id", ns+"-ctx"),
		arrParam("set", "state.deployed=yes", "state.leak=local-trigger-token")), time.Minute)
	if !set.IsSuccessful() {
		t.Fatalf("set: %+v", set.Status.GetCondition(apis.ConditionSucceeded))
	}
	ev = sink.await(t, cloudevents.TypeContextChanged, subject, func(d json.RawMessage) bool { return entryOf(t, d).Op == "set" })
	if e := entryOf(t, ev.Data); e.Who.CustomRun != "set-1" || !e.Touches("state.deployed") {
		t.Errorf("set event %s", ev.Data)
	}
	if d := string(ev.Data); strings.Contains(d, "local-trigger-token") || !strings.Contains(d, "[REDACTED]") || !strings.Contains(d, `\"yes\"`) {
		t.Errorf("the set event does not carry the redacted entry: %s", d)
	}

	out, err := plugin(t, "gates", "approve", name, "-n", ns, "--option", "ship", "-m", "go", "--as", "alice")
	mustAccept(t, "alice's approval", out, err)
	succeeded(t, waitPipelineRun(t, ns, "release-1", 60*time.Second))
	ev = sink.await(t, cloudevents.TypeGateDecided, subject, func(json.RawMessage) bool { return true })
	if g := gateOf(t, ev.Data); g.State != "Approved" || g.Choice != "ship" || g.ChosenBy != "alice" || g.DecidedAt == nil || g.CustomRun != name {
		t.Errorf("gate.decided data %s", ev.Data)
	}
	sink.await(t, cloudevents.TypeContextChanged, subject, func(d json.RawMessage) bool { return entryOf(t, d).Op == "decision" })
	// events of other namespaces' contexts carry their own subjects
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, e := range sink.events {
		if strings.HasPrefix(e.Subject, ns+"/") && e.Subject != subject {
			t.Errorf("an event about %s in the test namespace", e.Subject)
		}
	}
}

// TestCloudEventsDeadSinkCostsOpsNothing: with the sink down, ops succeed;
// the events are retried, then counted failed or dropped, never sent.
func TestCloudEventsDeadSinkCostsOpsNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/events"
	ln.Close()
	typ := fmt.Sprintf("{type=%q}", cloudevents.TypeContextChanged)
	sent0 := metricOr(t, "cicdstatemgr_cloudevents_sent_total"+typ, 0)
	lost0 := metricOr(t, "cicdstatemgr_cloudevents_failed_total"+typ, 0) + metricOr(t, "cicdstatemgr_cloudevents_dropped_total"+typ, 0)
	withCloudEvents(t, map[string]any{"sink": dead, "queueSize": 4, "maxAttempts": 2})

	ns := namespace(t, "cedead")
	initContext(t, ns, "ctx")
	for i := range 10 {
		cr := runOne(t, ns, customRun(fmt.Sprintf("set-%d", i), "dead", time.Minute, strParam("op", "set"), strParam("id", "ctx"),
			arrParam("set", fmt.Sprintf("state.n=%d", i))), time.Minute)
		if !cr.IsSuccessful() {
			t.Fatalf("set %d with a dead sink: %+v", i, cr.Status.GetCondition(apis.ConditionSucceeded))
		}
	}
	if v := cliGet(t, ns, "ctx", "state.n"); v != "9" {
		t.Fatalf("state.n = %q after the sets", v)
	}
	waitFor(t, 30*time.Second, "the events given up", func() bool {
		lost := metricOr(t, "cicdstatemgr_cloudevents_failed_total"+typ, 0) + metricOr(t, "cicdstatemgr_cloudevents_dropped_total"+typ, 0)
		return lost-lost0 >= 11 // init and ten sets
	})
	if sent := metricOr(t, "cicdstatemgr_cloudevents_sent_total"+typ, 0); sent != sent0 {
		t.Fatalf("%v events counted sent to a dead sink", sent-sent0)
	}
}

// TestCloudEventsSinkIsTheAdminsOnly: a pipeline author who names a sink of
// their own (a cloudEvents block in the app config, a set of
// state.cloudEvents.sink) gets no event there; the administrator's sink gets
// the same context's events (the positive control).
func TestCloudEventsSinkIsTheAdminsOnly(t *testing.T) {
	admin, attacker := startCESink(t), startCESink(t)
	withCloudEvents(t, map[string]any{"sink": admin.url})
	ns := namespace(t, "cesink")
	app := fmt.Sprintf("cloudEvents: {sink: %q}\ncicd-contexts: {stage: {channel: c, cloudEvents: {sink: %q}}}\n", attacker.url, attacker.url)
	cr := runOne(t, ns, customRun("init", "cesink", time.Minute, strParam("op", "init"), strParam("id", "ctx"), strParam("app-config", app),
		arrParam("set", "state.cloudEvents.sink="+attacker.url)), time.Minute)
	if !cr.IsSuccessful() {
		t.Fatalf("init: %+v", cr.Status.GetCondition(apis.ConditionSucceeded))
	}
	admin.await(t, cloudevents.TypeContextChanged, ns+"/ctx", func(d json.RawMessage) bool { return entryOf(t, d).Op == "init" })
	time.Sleep(time.Second) // an event to the attacker would have come with the admin's
	attacker.mu.Lock()
	defer attacker.mu.Unlock()
	if len(attacker.events) != 0 {
		t.Fatalf("the pipeline author's sink got %d events: %+v", len(attacker.events), attacker.events)
	}
}
