package reconciler

import (
	"context"
	"encoding/json"

	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	listers "github.com/tektoncd/pipeline/pkg/client/listers/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	fakekube "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	testclock "k8s.io/utils/clock/testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// gateReconciler is a Reconciler with ApprovalGates over a fake dynamic
// client (and empty caches, so every read goes to the fake API).
func gateReconciler(t *testing.T, src staticSource, clk *testclock.FakeClock) (*Reconciler, *dynfake.FakeDynamicClient) {
	t.Helper()
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{v1alpha1.ApprovalGatesResource: "ApprovalGateList"})
	a := &ApprovalGates{Client: dyn, Source: src, Clock: clk,
		Lister: cache.NewGenericLister(cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}), v1alpha1.ApprovalGatesResource.GroupResource()),
		Runs:   listers.NewCustomRunLister(cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}))}
	return &Reconciler{Clock: clk, Source: src, KubeClient: fakekube.NewSimpleClientset(), Approvals: a}, dyn
}

func gateRun(t *testing.T, uid, params string) *v1beta1.CustomRun {
	return parseRun(t, fmt.Sprintf(header, uid)+`  timeout: 1m
  params:
  - {name: op, value: handle-event}
  - {name: id, value: ctx-1}
  - {name: event, value: "p=gate"}
`+params)
}

func (r *Reconciler) gateOfRun(t *testing.T, run *v1beta1.CustomRun) *v1alpha1.ApprovalGate {
	t.Helper()
	g, err := r.Approvals.gateOf(context.Background(), run)
	if err != nil || g == nil {
		t.Fatalf("the gate of %s: %v %v", run.Name, g, err)
	}
	return g
}

// decideAs writes a decision into the gate as an approver would (the API
// server's policy is not part of this test).
func decideAs(t *testing.T, r *Reconciler, run *v1beta1.CustomRun, d v1alpha1.Decision) {
	t.Helper()
	g := r.gateOfRun(t, run)
	g.Spec.Decisions = append(g.Spec.Decisions, d)
	u, err := v1alpha1.ToUnstructured(g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Approvals.resource(g.Namespace).Update(context.Background(), u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestApprovalGateObjectQuorumAndRejection: the waiting run gets its gate
// object (owned by it, Pending 0/2); one approval of two keeps it waiting
// (status 1/2, the Slack message updated); a rejection with a reason fails
// the run with ApprovalGateRejected and the results reason and chosen-by.
func TestApprovalGateObjectQuorumAndRejection(t *testing.T) {
	ep := newEndpoint(t)
	src, _ := eventsSource(t, ep.srv.URL)
	clk := testclock.NewFakeClock(now)
	r, _ := gateReconciler(t, src, clk)
	r.Approvals.Metrics = NewGateMetrics(prometheus.NewRegistry())
	run := gateRun(t, "uid-q", `  - {name: approvers, value: [alice, bob]}
  - {name: approvals-required, value: "2"}
`)
	ev := r.ReconcileKind(context.Background(), run)
	checkStatus(t, run, wantStatus{status: corev1.ConditionUnknown, reason: ReasonWaitingForDecision, message: "gates approve", requeue: true}, ev)
	g := r.gateOfRun(t, run)
	if g.Status.Outcome.State != v1alpha1.StatePending || g.Status.Approvals != "0/2" || g.Spec.Title != "pick" ||
		len(g.OwnerReferences) != 1 || g.OwnerReferences[0].UID != run.UID || g.Labels[v1alpha1.LabelGateKey] != "uid-q" {
		t.Fatalf("gate %+v", g)
	}
	posts := ep.hits.Load()

	decideAs(t, r, run, v1alpha1.Decision{By: "alice", Action: v1alpha1.ActionApprove, Option: "b", Message: "fine"})
	ev = r.ReconcileKind(context.Background(), run)
	checkStatus(t, run, wantStatus{status: corev1.ConditionUnknown, reason: ReasonWaitingForDecision, requeue: true}, ev)
	if g := r.gateOfRun(t, run); g.Status.Approvals != "1/2" || len(g.Status.Decisions) != 1 || g.Status.Decisions[0].At == nil {
		t.Fatalf("after one approval: %+v", g.Status)
	}
	if ep.hits.Load() != posts+1 {
		t.Errorf("the Slack message was not updated after the partial approval (%d posts)", ep.hits.Load())
	}
	r.ReconcileKind(context.Background(), run) // nothing new: no second update
	if ep.hits.Load() != posts+1 {
		t.Errorf("an unchanged gate updated the Slack message again")
	}

	decideAs(t, r, run, v1alpha1.Decision{By: "bob", Action: v1alpha1.ActionReject, Message: "not today"})
	ev = r.ReconcileKind(context.Background(), run)
	checkStatus(t, run, wantStatus{status: corev1.ConditionFalse, reason: ReasonGateRejected, message: "not today",
		results: map[string]string{"chosen-by": "bob", "reason": "bob: not today", "choice": ""}}, ev)
	g = r.gateOfRun(t, run)
	if g.Status.Outcome.State != v1alpha1.StateRejected || g.Status.Outcome.DecidedAt == nil {
		t.Fatalf("outcome %+v", g.Status.Outcome)
	}
	if ep.hits.Load() != posts+2 {
		t.Errorf("the Slack message was not updated with the outcome")
	}
	if n := testutil.ToFloat64(r.Approvals.Metrics.outcomes.WithLabelValues(v1alpha1.StateRejected)); n != 1 {
		t.Errorf("rejected outcomes counted %v times, want 1", n)
	}
	// the state records the rejection and its reason beside who decided
	out, err := src.eng.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpGet, ID: "ctx-1", Config: src.cfg,
		Gets: []engine.GetSpec{{Name: "by", Expr: "state.choices.p.gate.chosenBy"}, {Name: "outcome", Expr: "state.choices.p.gate.outcome"},
			{Name: "reason", Expr: "state.choices.p.gate.reason"}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"by": "bob", "outcome": "Rejected", "reason": "bob: not today"} {
		if got, _ := out.Result(name); got != want {
			t.Errorf("state.choices.p.gate %s = %q, want %q", name, got, want)
		}
	}
}

// TestApprovalGateObjectQuorumReached: two approvals succeed with chosen-by
// both in order, recorded once in the state.
func TestApprovalGateObjectQuorumReached(t *testing.T) {
	ep := newEndpoint(t)
	src, choices := eventsSource(t, ep.srv.URL)
	r, _ := gateReconciler(t, src, testclock.NewFakeClock(now))
	run := gateRun(t, "uid-ok", `  - {name: approvers, value: [alice, bob]}
  - {name: approvals-required, value: "2"}
`)
	r.ReconcileKind(context.Background(), run)
	decideAs(t, r, run, v1alpha1.Decision{By: "bob", Action: v1alpha1.ActionApprove, Option: "a"})
	decideAs(t, r, run, v1alpha1.Decision{By: "alice", Action: v1alpha1.ActionApprove, Option: "a"})
	ev := r.ReconcileKind(context.Background(), run)
	checkStatus(t, run, wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{"choice": "a", "chosen-by": "bob,alice"}}, ev)
	if _, d, err := choices.Get(context.Background(), "uid-ok"); err != nil || d == nil || d.ChosenBy != "bob,alice" {
		t.Fatalf("the outcome is not committed in Redis: %+v %v", d, err)
	}
	// A CLI decision after the outcome loses.
	if _, _, err := choices.Decide(context.Background(), gate.Lookup{Key: "uid-ok"}, gate.Decision{Choice: "b", ChosenBy: "op"}); err == nil {
		t.Fatal("a second outcome was accepted")
	}
}

// TestApprovalGateObjectTimeouts: on-timeout with an option succeeds with it,
// chosen-by timeout; without, the run times out and the gate is TimedOut.
func TestApprovalGateObjectTimeouts(t *testing.T) {
	ep := newEndpoint(t)
	src, _ := eventsSource(t, ep.srv.URL)
	clk := testclock.NewFakeClock(now)
	r, _ := gateReconciler(t, src, clk)
	withOption := gateRun(t, "uid-to", "  - {name: on-timeout, value: b}\n")
	failing := gateRun(t, "uid-tf", "")
	failing.Name = "run-2"
	r.ReconcileKind(context.Background(), withOption)
	r.ReconcileKind(context.Background(), failing)
	clk.Step(2 * time.Minute)
	ev := r.ReconcileKind(context.Background(), withOption)
	checkStatus(t, withOption, wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{"choice": "b", "chosen-by": "timeout"}}, ev)
	if g := r.gateOfRun(t, withOption); g.Status.Outcome.State != v1alpha1.StateTimedOut || g.Status.Outcome.Choice != "b" {
		t.Errorf("outcome %+v", g.Status.Outcome)
	}
	ev = r.ReconcileKind(context.Background(), failing)
	checkStatus(t, failing, wantStatus{status: corev1.ConditionFalse, reason: ReasonTimedOut}, ev)
	if g := r.gateOfRun(t, failing); g.Status.Outcome.State != v1alpha1.StateTimedOut || g.Status.Outcome.Choice != "" {
		t.Errorf("outcome %+v", g.Status.Outcome)
	}
	// An on-timeout that is no option fails the run when the gate opens.
	bad := gateRun(t, "uid-bad", "  - {name: on-timeout, value: nope}\n")
	bad.Name = "run-3"
	ev = r.ReconcileKind(context.Background(), bad)
	checkStatus(t, bad, wantStatus{status: corev1.ConditionFalse, reason: "InvalidParams", message: "on-timeout"}, ev)
}

// TestTimedOutGateDecisionIsRedacted: the decision a timeout records goes
// into the context's history with the configuration's redaction, like every
// other write (the secret here is the on-timeout option itself).
func TestTimedOutGateDecisionIsRedacted(t *testing.T) {
	ep := newEndpoint(t)
	app := strings.Replace(eventsApp, "value: b}", "value: secret-choice}", 1)
	src, _ := eventsSourceWith(t, ep.srv.URL, app, "cicdstatemgr:\n  slack: {token: secret-choice}\n")
	clk := testclock.NewFakeClock(now)
	r, _ := gateReconciler(t, src, clk)
	run := gateRun(t, "uid-red", "  - {name: on-timeout, value: secret-choice}\n")
	r.ReconcileKind(context.Background(), run)
	clk.Step(2 * time.Minute)
	ev := r.ReconcileKind(context.Background(), run)
	checkStatus(t, run, wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{"chosen-by": "timeout"}}, ev)
	st := src.eng.Store.(*store.Store)
	entries, err := st.History(context.Background(), store.Ref("ns", "ctx-1"), 1)
	if err != nil || len(entries) != 1 {
		t.Fatalf("history: %v %v", entries, err)
	}
	e := entries[0]
	if e.Op != "decision" || e.Who.Approver != "timeout" {
		t.Fatalf("newest entry is %s by %+v, want the timeout's decision", e.Op, e.Who)
	}
	b, _ := json.Marshal(e)
	if strings.Contains(string(b), "secret-choice") || !strings.Contains(string(b), "[REDACTED]") {
		t.Errorf("the decision's history entry is not redacted: %s", b)
	}
}

// TestSlackVoteOnTheObject: a click by a Slack approver is recorded in the
// object as via slack; others are refused.
func TestSlackVoteOnTheObject(t *testing.T) {
	ep := newEndpoint(t)
	src, _ := eventsSource(t, ep.srv.URL)
	r, _ := gateReconciler(t, src, testclock.NewFakeClock(now))
	run := gateRun(t, "uid-s", "  - {name: approvers, value: [bob]}\n")
	r.ReconcileKind(context.Background(), run)
	g := r.gateOfRun(t, run)
	g.Spec.Approvers.SlackUsers = []string{"U0ALICE01"} // as the block's allowed-users would
	u, _ := v1alpha1.ToUnstructured(g)
	if _, err := r.Approvals.resource("ns").Update(context.Background(), u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := gate.Gate{Key: "uid-s", Title: "pick", Options: []gate.Option{{Value: "a"}, {Value: "b"}}}
	if err := r.Approvals.Vote(context.Background(), p, gate.Decision{Choice: "a", UserID: "U0MALLORY", At: now}); err == nil || !strings.Contains(err.Error(), "not an approver") {
		t.Errorf("vote by a stranger: %v", err)
	}
	if err := r.Approvals.Vote(context.Background(), p, gate.Decision{Choice: "zzz", UserID: "U0ALICE01", At: now}); err == nil {
		t.Errorf("vote for an unknown option accepted")
	}
	if err := r.Approvals.Vote(context.Background(), p, gate.Decision{Choice: "a", UserID: "U0ALICE01", UserName: "alice", At: now}); err != nil {
		t.Fatal(err)
	}
	if d := r.gateOfRun(t, run).Spec.Decisions; len(d) != 1 || d[0].By != "U0ALICE01" || d[0].Via != v1alpha1.ViaSlack || d[0].Option != "a" {
		t.Errorf("decisions %+v", d)
	}
	if err := r.Approvals.Vote(context.Background(), gate.Gate{Key: "no-such"}, gate.Decision{Choice: "a", UserID: "U0ALICE01"}); err != gate.ErrNoObject {
		t.Errorf("vote on a gate without an object: %v, want ErrNoObject", err)
	}
	ev := r.ReconcileKind(context.Background(), run)
	checkStatus(t, run, wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{"choice": "a", "chosen-by": "U0ALICE01"}}, ev)
}

// TestSlackAPI: Slack methods are called next to slack.url.
func TestSlackAPI(t *testing.T) {
	for in, want := range map[string]string{
		"https://slack.com/api/chat.postMessage": "https://slack.com/api/chat.update",
		"http://127.0.0.1:18094/slack":           "http://127.0.0.1:18094/slack/chat.update",
		"http://127.0.0.1:18094":                 "http://127.0.0.1:18094/chat.update",
	} {
		cfg, err := config.Parse([]byte(fmt.Sprintf("cicdstatemgr:\n  slack: {url: %q}\n", in)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := slackAPI(cfg, "chat.update"); got != want {
			t.Errorf("slack.url %s: %s, want %s", in, got, want)
		}
	}
}

// TestApprovalGateRacesTheTimeout: a quorum recorded before the timeout is
// reconciled wins over it (one outcome: Approved, the run Succeeded); a run
// cancelled after its gate was decided ends cancelled and the gate keeps its
// outcome; a CLI decision committed first wins over the votes.
func TestApprovalGateRacesTheTimeout(t *testing.T) {
	ep := newEndpoint(t)
	src, choices := eventsSource(t, ep.srv.URL)
	clk := testclock.NewFakeClock(now)
	r, _ := gateReconciler(t, src, clk)

	late := gateRun(t, "uid-late", "  - {name: approvers, value: [alice]}\n")
	r.ReconcileKind(context.Background(), late)
	decideAs(t, r, late, v1alpha1.Decision{By: "alice", Action: v1alpha1.ActionApprove, Option: "a"})
	clk.Step(2 * time.Minute) // the next reconcile comes after the deadline
	ev := r.ReconcileKind(context.Background(), late)
	checkStatus(t, late, wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{"choice": "a", "chosen-by": "alice"}}, ev)
	if g := r.gateOfRun(t, late); g.Status.Outcome.State != v1alpha1.StateApproved {
		t.Errorf("outcome %+v, want Approved", g.Status.Outcome)
	}

	clk.SetTime(now)
	cancelled := gateRun(t, "uid-cancel", "  - {name: approvers, value: [alice]}\n")
	cancelled.Name = "run-c"
	r.ReconcileKind(context.Background(), cancelled)
	if _, _, err := choices.Decide(context.Background(), gate.Lookup{Key: "uid-cancel"}, gate.Decision{Choice: "b", ChosenBy: "op"}); err != nil {
		t.Fatal(err)
	}
	cancelled.Spec.Status = v1beta1.CustomRunSpecStatusCancelled
	ev = r.ReconcileKind(context.Background(), cancelled)
	checkStatus(t, cancelled, wantStatus{status: corev1.ConditionFalse, reason: ReasonCancelled}, ev)
	if g := r.gateOfRun(t, cancelled); g.Status.Outcome.State != v1alpha1.StateApproved || g.Status.Outcome.Choice != "b" {
		t.Errorf("outcome %+v, want the CLI's decision kept", g.Status.Outcome)
	}

	cli := gateRun(t, "uid-cli", "  - {name: approvers, value: [alice, bob]}\n")
	cli.Name = "run-cli"
	r.ReconcileKind(context.Background(), cli)
	decideAs(t, r, cli, v1alpha1.Decision{By: "alice", Action: v1alpha1.ActionApprove, Option: "a"})
	if _, _, err := choices.Decide(context.Background(), gate.Lookup{Key: "uid-cli"}, gate.Decision{Choice: "b", ChosenBy: "op"}); err != nil {
		t.Fatal(err)
	}
	ev = r.ReconcileKind(context.Background(), cli)
	checkStatus(t, cli, wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{"choice": "b", "chosen-by": "op"}}, ev)
	g := r.gateOfRun(t, cli)
	if g.Status.Outcome.Choice != "b" || len(g.Status.Decisions) != 2 || g.Status.Decisions[1].Via != v1alpha1.ViaCLI {
		t.Errorf("status %+v, want the CLI's decision mirrored and winning", g.Status)
	}
}
