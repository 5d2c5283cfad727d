package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/pkg/apis"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
)

// The approval gate tests: the ApprovalGate object a waiting CustomRun gets,
// decided by Kubernetes users (kubectl as them, and the tkn plugin) under the
// API server's admission policy, and by signed Slack clicks; quorum,
// rejection, timeouts, cancellation, deletion with the run, and the Slack
// message updates. Users are impersonated by the admin kubeconfig (kubectl
// --as, --as-group): the API server authorizes and admits the request as
// that user.

// slackGroupID is a Slack user group whose one member is slackGroupMember,
// as the fake Slack answers usergroups.users.list.
const (
	slackGroupID     = "S0RELEASE"
	slackGroupMember = "U0GROUP01"
)

// fakeSlackAPI records every call (path and body) and answers like Slack:
// chat.postMessage with the channel and ts of the message, chat.update ok,
// usergroups.users.list with the members of slackGroupID.
type fakeSlackAPI struct {
	mu    sync.Mutex
	calls []string
}

func startFakeSlackAPI(t *testing.T) *fakeSlackAPI {
	t.Helper()
	f := &fakeSlackAPI{}
	serveAdminHost(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.calls = append(f.calls, r.URL.Path+"?"+r.URL.RawQuery+" auth="+r.Header.Get("Authorization")+" "+string(b))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/usergroups.users.list") && r.URL.Query().Get("usergroup") == slackGroupID:
			io.WriteString(w, `{"ok": true, "users": ["`+slackGroupMember+`"]}`)
		case strings.HasSuffix(r.URL.Path, "/usergroups.users.list"):
			io.WriteString(w, `{"ok": false, "error": "no_such_subteam"}`)
		default:
			io.WriteString(w, `{"ok": true, "channel": "C0DEPLOY", "ts": "1700000000.000100"}`)
		}
	}))
	return f
}

// updates are the chat.update bodies received so far.
func (f *fakeSlackAPI) updates() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.Contains(c, "/chat.update") {
			out = append(out, c)
		}
	}
	return out
}

// approvalPipeline is a release pipeline whose approve task waits at a
// manual-choice gate; approveParams are more params of that task (YAML lines
// indented for the params list) and timeout its task timeout ("" for none).
func approvalPipeline(allowedUsers, approveParams, timeout string) string {
	to := ""
	if timeout != "" {
		to = "\n    timeout: " + timeout
	}
	return fmt.Sprintf(`apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: release}
spec:
  params: [{name: id}]
  results:
  - {name: choice, value: $(tasks.approve.results.choice)}
  - {name: chosen-by, value: $(tasks.approve.results.chosen-by)}
  - {name: reason, value: $(tasks.approve.results.reason)}
  - {name: decided-at, value: $(tasks.approve.results.decided-at)}
  tasks:
  - name: init
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: init}
    - {name: id, value: $(params.id)}
    - {name: set, value: [state.version=3.0.0]}
    - name: app-config
      value: |
        cicd-contexts:
          stage:
            channel: releases
            pipelines:
              release:
                event-handlers:
                  approve:
                    manual-choice:
                      title: "Release {{ state.version }}?"
                      wait: true
                      allowed-users: [%s]
                      choices:
                        decide:
                          header: "Ship {{ state.version }}?"
                          options:
                          - {text: Ship it, value: ship}
                          - {text: Hold, value: hold}
  - name: approve
    runAfter: [init]%s
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: handle-event}
    - {name: id, value: $(params.id)}
    - {name: event, value: release=approve}
%s`, allowedUsers, to, approveParams)
}

// approverRBAC lets the test users see and patch the namespace's gates
// (cicdstatemgr-approver): whether a write is accepted is then up to the
// admission policy alone.
const approverRBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: approvers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cicdstatemgr-approver}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
- {kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}
- {kind: User, name: carol, apiGroup: rbac.authorization.k8s.io}
- {kind: User, name: mallory, apiGroup: rbac.authorization.k8s.io}
- {kind: Group, name: release-managers, apiGroup: rbac.authorization.k8s.io}
`

// startRelease applies the pipeline and RBAC in a new namespace, starts a
// PipelineRun and waits until its gate waits; it returns the namespace and
// the gate's name (the approve task's CustomRun).
func startRelease(t *testing.T, prefix, pipeline string) (ns, gateName string) {
	t.Helper()
	ns = namespace(t, prefix)
	kubectl(t, pipeline, "-n", ns, "apply", "-f", "-")
	kubectl(t, approverRBAC, "-n", ns, "apply", "-f", "-")
	kubectl(t, pipelineRun("release-1", "release", map[string]string{"id": ns + "-ctx"}), "-n", ns, "create", "-f", "-")
	waitCustomRunReason(t, ns, "tekton.dev/pipelineTask=approve", "WaitingForDecision", 60*time.Second)
	return ns, customRunOf(t, ns, "release-1", "approve").Name
}

var dynClient = sync.OnceValue(func() dynamic.Interface {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		panic(err)
	}
	return dynamic.NewForConfigOrDie(cfg)
})

func getGate(t *testing.T, ns, name string) *v1alpha1.ApprovalGate {
	t.Helper()
	u, err := dynClient().Resource(v1alpha1.ApprovalGatesResource).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ApprovalGate %s/%s: %v", ns, name, err)
	}
	g, err := v1alpha1.FromUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// waitGate waits until the gate satisfies ok.
func waitGate(t *testing.T, ns, name, what string, ok func(*v1alpha1.ApprovalGate) bool) *v1alpha1.ApprovalGate {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		g := getGate(t, ns, name)
		if ok(g) {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("gate %s/%s: %s not reached: spec.decisions %+v status %+v\n%s", ns, name, what, g.Spec.Decisions, g.Status, describe(ns))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// asUser runs kubectl impersonating user (and groups); it returns the output
// and the error, for attacks that must fail.
func asUser(user string, groups []string, stdin string, args ...string) (string, error) {
	full := []string{"--as", user}
	for _, g := range groups {
		full = append(full, "--as-group", g)
	}
	cmd := exec.Command(kubectlPath, append(full, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// patchDecision appends decision d to the gate as user, with a JSON patch
// (kubectl patch --type json).
func patchDecision(t *testing.T, ns, name, user string, groups []string, d map[string]any) (string, error) {
	t.Helper()
	op := map[string]any{"op": "add", "path": "/spec/decisions/-", "value": d}
	if len(getGate(t, ns, name).Spec.Decisions) == 0 {
		op = map[string]any{"op": "add", "path": "/spec/decisions", "value": []any{d}}
	}
	b, _ := json.Marshal([]any{op})
	return asUser(user, groups, "", "-n", ns, "patch", "approvalgates.cicdstatemgr.dev", name, "--type", "json", "-p", string(b))
}

var pluginBin = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(os.TempDir(), fmt.Sprintf("tkn-cicdstatemgr-e2e-%d", os.Getpid()))
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tkn-cicdstatemgr")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the tkn plugin: %v\n%s", err, out)
	}
	return bin, nil
})

// plugin runs tkn-cicdstatemgr with the admin kubeconfig (plus --as flags
// given in args).
func plugin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := pluginBin()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func mustRefuse(t *testing.T, what, out string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s was accepted: %s", what, out)
		return
	}
	if !strings.Contains(out, want) {
		t.Errorf("%s refused, but not by the policy (want %q): %s", what, want, out)
	}
}

func mustAccept(t *testing.T, what, out string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s was refused: %v: %s", what, err, out)
	}
}

// TestApprovalGateQuorumOfKubernetesUsers: two approvals required. The gate
// is an object owned by its CustomRun; a non-approver, a user writing as
// someone else, a change of the quorum and the requester approving their own
// gate are refused by the API server, each beside an accepted approval; a
// group member approves with the tkn plugin; the run succeeds with chosen-by
// both approvers in order; nobody can change the decided gate; the Slack
// message shows the partial approval and then the outcome without buttons;
// the gate is deleted with its CustomRun.
func TestApprovalGateQuorumOfKubernetesUsers(t *testing.T) {
	fake := startFakeSlackAPI(t)
	ns, name := startRelease(t, "agquorum", approvalPipeline("", `    - {name: approvers, value: [alice, bob]}
    - {name: approver-groups, value: [release-managers]}
    - {name: approvals-required, value: "2"}
    - {name: forbid-self-approval, value: "true"}
    - {name: requested-by, value: carol}
`, ""))
	g := waitGate(t, ns, name, "Pending", func(g *v1alpha1.ApprovalGate) bool { return g.Status.Outcome.State == v1alpha1.StatePending })
	run := customRunOf(t, ns, "release-1", "approve")
	if len(g.OwnerReferences) != 1 || g.OwnerReferences[0].UID != run.UID || g.OwnerReferences[0].Kind != "CustomRun" {
		t.Errorf("owner references %+v, want the CustomRun %s", g.OwnerReferences, run.UID)
	}
	if g.Spec.Title != "Release 3.0.0?" || len(g.Spec.Options) != 2 || g.Spec.Required() != 2 || g.Status.Approvals != "0/2" {
		t.Errorf("gate spec %+v status %+v", g.Spec, g.Status)
	}

	// Attack: mallory may patch gates (RBAC) but is no approver.
	out, err := patchDecision(t, ns, name, "mallory", nil, map[string]any{"by": "mallory", "action": "approve", "option": "ship"})
	mustRefuse(t, "a non-approver's decision", out, err, "mallory is not an approver")
	// Positive control: alice, an approver, records her approval the same way.
	out, err = patchDecision(t, ns, name, "alice", nil, map[string]any{"by": "alice", "action": "approve", "option": "ship", "message": "staging is green"})
	mustAccept(t, "alice's approval", out, err)
	// Attack: alice records a decision as bob.
	out, err = patchDecision(t, ns, name, "alice", nil, map[string]any{"by": "bob", "action": "approve", "option": "ship"})
	mustRefuse(t, "alice writing as bob", out, err, "must say by: alice")
	// Attack: alice lowers the quorum.
	out, err = asUser("alice", nil, "", "-n", ns, "patch", "approvalgates.cicdstatemgr.dev", name, "--type", "merge", "-p", `{"spec":{"approvalsRequired":1}}`)
	mustRefuse(t, "alice changing approvalsRequired", out, err, "only spec.decisions")
	// Attack: carol requested the release; her group makes her an approver,
	// but not of her own request.
	out, err = patchDecision(t, ns, name, "carol", []string{"release-managers"}, map[string]any{"by": "carol", "action": "approve", "option": "ship"})
	mustRefuse(t, "carol approving her own request", out, err, "may not approve it")

	waitGate(t, ns, name, "1/2", func(g *v1alpha1.ApprovalGate) bool { return g.Status.Approvals == "1/2" })
	if c := customRunOf(t, ns, "release-1", "approve"); c.IsDone() {
		t.Fatalf("one approval of two ended the run: %+v", c.Status.Conditions)
	}
	list, err := plugin(t, "gates", "list", "-n", ns)
	mustAccept(t, "tkn-cicdstatemgr gates list", list, err)
	if !strings.Contains(list, name) || !strings.Contains(list, "release-1") || !strings.Contains(list, "ship,hold") || !strings.Contains(list, "1/2") || !strings.Contains(list, "Pending") {
		t.Errorf("gates list:\n%s", list)
	}
	// A member of release-managers approves with the tkn plugin, as himself.
	out, err = plugin(t, "gates", "approve", name, "-n", ns, "--option", "ship", "-m", "go", "--as", "dave", "--as-group", "release-managers")
	mustAccept(t, "dave's approval with tkn-cicdstatemgr", out, err)

	pr := waitPipelineRun(t, ns, "release-1", 60*time.Second)
	succeeded(t, pr)
	res := prResults(pr)
	if res["choice"] != "ship" || res["chosen-by"] != "alice,dave" || !strings.Contains(res["reason"], "alice: staging is green") || res["decided-at"] == "" {
		t.Errorf("results %v, want ship by alice,dave with alice's comment", res)
	}
	if got := cliGet(t, ns, ns+"-ctx", "state.choices.release.approve.chosenBy"); got != "alice,dave" {
		t.Errorf("state chosenBy %q, want alice,dave", got)
	}
	g = waitGate(t, ns, name, "Approved", func(g *v1alpha1.ApprovalGate) bool { return g.Status.Outcome.State == v1alpha1.StateApproved })
	if strings.Join(g.Status.Outcome.ChosenBy, ",") != "alice,dave" || g.Status.Outcome.Choice != "ship" || len(g.Status.Decisions) != 2 {
		t.Errorf("outcome %+v decisions %+v", g.Status.Outcome, g.Status.Decisions)
	}
	// After the outcome even an approver changes nothing.
	out, err = patchDecision(t, ns, name, "bob", nil, map[string]any{"by": "bob", "action": "reject", "message": "too late"})
	mustRefuse(t, "bob deciding after the outcome", out, err, "already decided")

	// Slack: the partial approval, then the outcome without buttons.
	ups := fake.updates()
	if len(ups) < 2 {
		t.Fatalf("chat.update calls: %v", ups)
	}
	if !strings.Contains(ups[0], "1/2") || !strings.Contains(ups[0], `"actions"`) || !strings.Contains(ups[0], `"ts":"1700000000.000100"`) || !strings.Contains(ups[0], "Bearer local-demo-token") {
		t.Errorf("first update does not show 1/2 with buttons: %s", ups[0])
	}
	last := ups[len(ups)-1]
	if !strings.Contains(last, "approved: ship by alice, dave") || strings.Contains(last, `"actions"`) || !strings.Contains(last, "staging is green") {
		t.Errorf("last update does not show the outcome without buttons: %s", last)
	}
	if strings.Contains(strings.Join(fake.calls, "\n"), "/usergroups.users.list") {
		t.Errorf("Slack user groups looked up for a gate without any")
	}

	// Deleted with its CustomRun.
	if err := tekton.TektonV1beta1().CustomRuns(ns).Delete(context.Background(), run.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := dynClient().Resource(v1alpha1.ApprovalGatesResource).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil && strings.Contains(err.Error(), "not found") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gate outlived its CustomRun: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestApprovalGateSlackAndKubernetesConverge: a quorum of two reached by a
// signed Slack click of a member of a Slack user group (resolved through the
// Slack API) and a Kubernetes approver with the tkn plugin; a Slack user in
// no group is refused; the click is recorded in the object via slack.
func TestApprovalGateSlackAndKubernetesConverge(t *testing.T) {
	fake := startFakeSlackAPI(t)
	ns, name := startRelease(t, "agslack", approvalPipeline(aliceID, `    - {name: approvers, value: [bob]}
    - {name: approver-slack-groups, value: [`+slackGroupID+`]}
    - {name: approvals-required, value: "2"}
`, ""))
	waitGate(t, ns, name, "Pending", func(g *v1alpha1.ApprovalGate) bool { return g.Status.Outcome.State == v1alpha1.StatePending })
	if code, body := slackClick(t, "ship", "U0MALLORY", "mallory", time.Now(), true); code != http.StatusForbidden {
		t.Errorf("click by a Slack user in no group: %d %s, want 403", code, body)
	}
	if code, body := slackClick(t, "ship", slackGroupMember, "gina", time.Now(), true); code != http.StatusOK {
		t.Fatalf("click by a member of %s: %d %s", slackGroupID, code, body)
	}
	g := waitGate(t, ns, name, "1/2", func(g *v1alpha1.ApprovalGate) bool { return g.Status.Approvals == "1/2" })
	if len(g.Spec.Decisions) != 1 || g.Spec.Decisions[0].By != slackGroupMember || g.Spec.Decisions[0].Via != v1alpha1.ViaSlack {
		t.Errorf("the click is not recorded as a slack decision: %+v", g.Spec.Decisions)
	}
	if !strings.Contains(strings.Join(fake.calls, "\n"), "/usergroups.users.list?usergroup="+slackGroupID) {
		t.Errorf("the Slack user group was not resolved through the Slack API: %v", fake.calls)
	}
	out, err := plugin(t, "gates", "approve", name, "-n", ns, "--as", "bob")
	mustAccept(t, "bob's approval with tkn-cicdstatemgr", out, err)
	pr := waitPipelineRun(t, ns, "release-1", 60*time.Second)
	succeeded(t, pr)
	if res := prResults(pr); res["choice"] != "ship" || res["chosen-by"] != slackGroupMember+",bob" {
		t.Errorf("results %v, want ship by %s,bob", res, slackGroupMember)
	}
	// The recorded decision, read back through a get CustomRun by the tkn plugin.
	got, err := plugin(t, "context", "get", ns+"-ctx", "state.choices.release.approve.chosenBy", "-n", ns)
	mustAccept(t, "tkn-cicdstatemgr context get", got, err)
	if strings.TrimSpace(got) != slackGroupMember+",bob" {
		t.Errorf("context get printed %q, want %s,bob", got, slackGroupMember)
	}
	// A click after the outcome is told so.
	if code, body := slackClick(t, "hold", slackGroupMember, "gina", time.Now(), true); code != http.StatusOK || !strings.Contains(body, "already decided") {
		t.Errorf("click after the outcome: %d %s", code, body)
	}
}

// TestApprovalGateRejectionWithReason: one rejection (with the tkn plugin)
// fails the run with the reason, recorded in the results and on the gate.
func TestApprovalGateRejectionWithReason(t *testing.T) {
	startFakeSlackAPI(t)
	ns, name := startRelease(t, "agreject", approvalPipeline("", `    - {name: approvers, value: [alice, bob]}
    - {name: approvals-required, value: "2"}
`, ""))
	out, err := plugin(t, "gates", "approve", name, "-n", ns, "--as", "alice")
	mustAccept(t, "alice's approval", out, err)
	out, err = plugin(t, "gates", "reject", name, "-n", ns, "-m", "the canary is failing", "--as", "bob")
	mustAccept(t, "bob's rejection", out, err)
	cr := waitCustomRunDone(t, ns, "release-1", "approve", 60*time.Second)
	c := cr.Status.GetCondition(apis.ConditionSucceeded)
	if c.IsTrue() || c.Reason != "ApprovalGateRejected" || !strings.Contains(c.Message, "the canary is failing") || !strings.Contains(c.Message, "bob") {
		t.Errorf("condition %s %s: %s", c.Status, c.Reason, c.Message)
	}
	res := map[string]string{}
	for _, r := range cr.Status.Results {
		res[r.Name] = r.Value
	}
	if res["reason"] != "bob: the canary is failing" || res["chosen-by"] != "bob" || res["choice"] != "" {
		t.Errorf("results %v", res)
	}
	g := waitGate(t, ns, name, "Rejected", func(g *v1alpha1.ApprovalGate) bool { return g.Status.Outcome.State == v1alpha1.StateRejected })
	if g.Status.Outcome.Reason != "bob: the canary is failing" {
		t.Errorf("outcome %+v", g.Status.Outcome)
	}
	desc, err := plugin(t, "gates", "describe", name, "-n", ns)
	mustAccept(t, "gates describe", desc, err)
	if !strings.Contains(desc, "Rejected") || !strings.Contains(desc, "bob (kubernetes): reject: the canary is failing") {
		t.Errorf("describe:\n%s", desc)
	}
}

// TestApprovalGateTimeouts: with on-timeout an option value, a gate nobody
// decides ends Succeeded with that choice and chosen-by timeout; without,
// the run ends CustomRunTimedOut and the gate TimedOut.
func TestApprovalGateTimeouts(t *testing.T) {
	startFakeSlackAPI(t)
	ns, name := startRelease(t, "agtimeout", approvalPipeline("", `    - {name: approvers, value: [alice]}
    - {name: on-timeout, value: hold}
`, "6s"))
	pr := waitPipelineRun(t, ns, "release-1", 60*time.Second)
	succeeded(t, pr)
	if res := prResults(pr); res["choice"] != "hold" || res["chosen-by"] != "timeout" {
		t.Errorf("results %v, want hold by timeout", res)
	}
	g := waitGate(t, ns, name, "TimedOut", func(g *v1alpha1.ApprovalGate) bool { return g.Status.Outcome.State == v1alpha1.StateTimedOut })
	if g.Status.Outcome.Choice != "hold" {
		t.Errorf("outcome %+v", g.Status.Outcome)
	}

	ns2, name2 := startRelease(t, "agtimeoutfail", approvalPipeline("", `    - {name: approvers, value: [alice]}
`, "6s"))
	cr := waitCustomRunDone(t, ns2, "release-1", "approve", 60*time.Second)
	if c := cr.Status.GetCondition(apis.ConditionSucceeded); c.IsTrue() || c.Reason != "CustomRunTimedOut" {
		t.Errorf("condition %s %s: %s", c.Status, c.Reason, c.Message)
	}
	waitGate(t, ns2, name2, "TimedOut", func(g *v1alpha1.ApprovalGate) bool {
		return g.Status.Outcome.State == v1alpha1.StateTimedOut && g.Status.Outcome.Choice == ""
	})
	out, err := patchDecision(t, ns2, name2, "alice", nil, map[string]any{"by": "alice", "action": "approve"})
	mustRefuse(t, "an approval after the timeout", out, err, "already decided")
}

// TestApprovalGateCancelled: cancelling the PipelineRun closes the gate.
func TestApprovalGateCancelled(t *testing.T) {
	startFakeSlackAPI(t)
	ns, name := startRelease(t, "agcancel", approvalPipeline("", `    - {name: approvers, value: [alice]}
`, ""))
	kubectl(t, "", "-n", ns, "patch", "pipelinerun", "release-1", "--type", "merge", "-p", `{"spec":{"status":"Cancelled"}}`)
	cr := waitCustomRunDone(t, ns, "release-1", "approve", 60*time.Second)
	if c := cr.Status.GetCondition(apis.ConditionSucceeded); c.IsTrue() {
		t.Errorf("cancelled run succeeded: %s", c.Message)
	}
	waitGate(t, ns, name, "Cancelled", func(g *v1alpha1.ApprovalGate) bool { return g.Status.Outcome.State == v1alpha1.StateCancelled })
	out, err := plugin(t, "gates", "approve", name, "-n", ns, "--as", "alice")
	if err == nil || !strings.Contains(out, "already decided") {
		t.Errorf("approving a cancelled gate: %v %s", err, out)
	}
}

// saKubeconfig writes a kubeconfig that authenticates with a token of the
// ServiceAccount ns/name (a real identity: no impersonation).
func saKubeconfig(t *testing.T, ns, name string) string {
	t.Helper()
	token := strings.TrimSpace(kubectl(t, "", "-n", ns, "create", "token", name, "--duration=1h"))
	server := kubectl(t, "", "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
	ca := kubectl(t, "", "config", "view", "--minify", "--raw", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}")
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: %s, certificate-authority-data: %s}}]
users: [{name: %s, user: {token: %s}}]
contexts: [{name: %s, context: {cluster: local, user: %s, namespace: %s}}]
current-context: %s
`, server, ca, name, token, name, name, ns, name)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestApprovalGateServiceAccountApprover: approvers with real identities,
// ServiceAccount tokens (no impersonation): an approver's token records its
// decision with the tkn plugin, while another ServiceAccount with the same
// RBAC is refused by the API server.
func TestApprovalGateServiceAccountApprover(t *testing.T) {
	startFakeSlackAPI(t)
	ns := namespace(t, "agsa")
	bot := "system:serviceaccount:" + ns + ":release-bot"
	kubectl(t, approvalPipeline("", `    - {name: approvers, value: [`+bot+`]}
`, ""), "-n", ns, "apply", "-f", "-")
	for _, sa := range []string{"release-bot", "intruder"} {
		kubectl(t, "", "-n", ns, "create", "serviceaccount", sa)
		kubectl(t, "", "-n", ns, "create", "rolebinding", sa+"-approver", "--clusterrole=cicdstatemgr-approver", "--serviceaccount="+ns+":"+sa)
	}
	kubectl(t, pipelineRun("release-1", "release", map[string]string{"id": ns + "-ctx"}), "-n", ns, "create", "-f", "-")
	waitCustomRunReason(t, ns, "tekton.dev/pipelineTask=approve", "WaitingForDecision", 60*time.Second)
	name := customRunOf(t, ns, "release-1", "approve").Name
	waitGate(t, ns, name, "Pending", func(g *v1alpha1.ApprovalGate) bool { return g.Status.Outcome.State == v1alpha1.StatePending })

	out, err := plugin(t, "gates", "approve", name, "--kubeconfig", saKubeconfig(t, ns, "intruder"), "--option", "ship")
	mustRefuse(t, "the intruder ServiceAccount's approval", out, err, "system:serviceaccount:"+ns+":intruder is not an approver")
	out, err = plugin(t, "gates", "approve", name, "--kubeconfig", saKubeconfig(t, ns, "release-bot"), "--option", "ship", "-m", "checks passed")
	mustAccept(t, "the release-bot ServiceAccount's approval", out, err)
	pr := waitPipelineRun(t, ns, "release-1", 60*time.Second)
	succeeded(t, pr)
	if res := prResults(pr); res["choice"] != "ship" || res["chosen-by"] != bot {
		t.Errorf("results %v, want ship by %s", res, bot)
	}
}
