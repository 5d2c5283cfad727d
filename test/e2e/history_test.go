package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"knative.dev/pkg/apis"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
)

// historyPipelines: "first" creates the context with state.version 1.0.0;
// "second" changes state.version (and sets a note holding the stack's Slack
// token, a secret of secrets.yaml), then waits at an approval gate that
// alice decides.
const historyPipelines = `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: first}
spec:
  params: [{name: id}]
  tasks:
  - name: create
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: init}
    - {name: id, value: $(params.id)}
    - {name: set, value: [state.version=1.0.0]}
    - name: app-config
      value: |
        cicd-contexts:
          stage:
            channel: releases
            pipelines:
              second:
                event-handlers:
                  approve:
                    manual-choice:
                      title: "Release {{ state.version }}?"
                      wait: true
                      choices:
                        decide:
                          header: "Ship {{ state.version }}?"
                          options:
                          - {text: Ship it, value: ship}
                          - {text: Hold, value: hold}
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: second}
spec:
  params: [{name: id}]
  tasks:
  - name: bump
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: set}
    - {name: id, value: $(params.id)}
    - {name: set, value: [state.version=1.0.1, "state.note=deployed with local-demo-token"]}
  - name: approve
    runAfter: [bump]
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: handle-event}
    - {name: id, value: $(params.id)}
    - {name: event, value: second=approve}
    - {name: approvers, value: [alice]}
`

// historyRun reads the history of id through an op history CustomRun in ns.
func historyRun(t *testing.T, ns, name, id string, params ...v1beta1.Param) (*v1beta1.CustomRun, []history.Entry, string) {
	t.Helper()
	cr := runOne(t, ns, customRun(name, "history", time.Minute,
		append([]v1beta1.Param{strParam("op", "history"), strParam("id", id)}, params...)...), time.Minute)
	var text string
	for _, r := range cr.Status.Results {
		if r.Name == "history" {
			text = r.Value
		}
	}
	var h []history.Entry
	if cr.IsSuccessful() {
		if err := json.Unmarshal([]byte(text), &h); err != nil {
			t.Fatalf("history result of %s is not a JSON array of entries: %v: %q", name, err, text)
		}
	}
	return cr, h, text
}

func ops(h []history.Entry) string {
	var out []string
	for _, e := range h {
		out = append(out, e.Op)
	}
	return strings.Join(out, ",")
}

func changeOf(e history.Entry, path string) (history.Change, bool) {
	for _, c := range e.Changes {
		if c.Path == path {
			return c, true
		}
	}
	return history.Change{}, false
}

// TestHistoryOfAContext: a pipeline creates a context, a second pipeline
// changes the same path and is approved at a gate: the history holds one
// entry per write, newest first, each with its op, who (the CustomRun, its
// PipelineRun and task; the verified approver) and what changed (old and new
// values, the secret redacted). It is read by an op history CustomRun (by
// path too), the tkn plugin and the CLI; a CustomRun of another namespace is
// told the context does not exist, beside the owner's run that reads it.
func TestHistoryOfAContext(t *testing.T) {
	startFakeSlackAPI(t)
	ns := namespace(t, "history")
	id := ns + "-ctx"
	kubectl(t, historyPipelines, "-n", ns, "apply", "-f", "-")
	kubectl(t, approverRBAC, "-n", ns, "apply", "-f", "-")

	kubectl(t, pipelineRun("first-1", "first", map[string]string{"id": id}), "-n", ns, "create", "-f", "-")
	succeeded(t, waitPipelineRun(t, ns, "first-1", 60*time.Second))
	kubectl(t, pipelineRun("second-1", "second", map[string]string{"id": id}), "-n", ns, "create", "-f", "-")
	waitCustomRunReason(t, ns, "tekton.dev/pipelineTask=approve", "WaitingForDecision", 60*time.Second)
	gateName := customRunOf(t, ns, "second-1", "approve").Name
	out, err := patchDecision(t, ns, gateName, "alice", nil, map[string]any{"by": "alice", "action": "approve", "option": "ship"})
	mustAccept(t, "alice's approval", out, err)
	succeeded(t, waitPipelineRun(t, ns, "second-1", 60*time.Second))

	// The owner's namespace reads the whole history.
	cr, h, text := historyRun(t, ns, "read-all", id)
	if !cr.IsSuccessful() {
		c := cr.Status.GetCondition(apis.ConditionSucceeded)
		t.Fatalf("op history in the owner's namespace: %s: %s", c.Reason, c.Message)
	}
	if ops(h) != "decision,set,init" {
		t.Fatalf("entries %s, want decision,set,init (one per write; the gate's handle-event changed nothing):\n%s", ops(h), text)
	}
	if strings.Contains(text, "local-demo-token") {
		t.Fatalf("a secret reached the history: %s", text)
	}
	create, bump := customRunOf(t, ns, "first-1", "create"), customRunOf(t, ns, "second-1", "bump")

	decision := h[0]
	if decision.Who != (history.Who{Namespace: ns, Approver: "alice", Via: "kubernetes"}) {
		t.Errorf("decision by %+v, want alice via kubernetes", decision.Who)
	}
	if c, ok := changeOf(decision, "state.choices"); !ok || !strings.Contains(c.New, `"choice":"ship"`) || !strings.Contains(c.New, `"chosenBy":"alice"`) {
		t.Errorf("decision changes %+v", decision.Changes)
	}

	set := h[1]
	if set.Who != (history.Who{Namespace: ns, CustomRun: bump.Name, PipelineRun: "second-1", PipelineTask: "bump"}) {
		t.Errorf("set by %+v, want the CustomRun %s of second-1/bump", set.Who, bump.Name)
	}
	if c, _ := changeOf(set, "state.version"); c != (history.Change{Path: "state.version", Old: `"1.0.0"`, New: `"1.0.1"`}) {
		t.Errorf("set of state.version: %+v", set.Changes)
	}
	if c, _ := changeOf(set, "state.note"); c.New != `"deployed with [REDACTED]"` || c.Old != "" {
		t.Errorf("the secret in state.note is not redacted: %+v", c)
	}

	init := h[2]
	if init.Who != (history.Who{Namespace: ns, CustomRun: create.Name, PipelineRun: "first-1", PipelineTask: "create"}) {
		t.Errorf("init by %+v, want the CustomRun %s of first-1/create", init.Who, create.Name)
	}
	if c, _ := changeOf(init, "state.version"); c.New != `"1.0.0"` || c.Old != "" {
		t.Errorf("init of state.version: %+v", init.Changes)
	}
	if !decision.Time.After(set.Time) || !set.Time.After(init.Time) {
		t.Errorf("entries not newest first: %v %v %v", decision.Time, set.Time, init.Time)
	}

	// By path: the two writes of state.version, and the limit.
	if cr, h, text := historyRun(t, ns, "read-version", id, strParam("path", "state.version")); !cr.IsSuccessful() || ops(h) != "set,init" {
		t.Errorf("history of state.version: %s %s", ops(h), text)
	}
	if cr, h, text := historyRun(t, ns, "read-latest", id, strParam("limit", "1")); !cr.IsSuccessful() || ops(h) != "decision" {
		t.Errorf("history limit 1: %s %s", ops(h), text)
	}

	// The tkn plugin (a history CustomRun made with the user's kubeconfig)
	// and the CLI (the store's credentials) read the same.
	got, err := plugin(t, "context", "history", id, "--path", "state.version", "-n", ns)
	mustAccept(t, "tkn-cicdstatemgr context history", got, err)
	var viaPlugin []history.Entry
	if json.Unmarshal([]byte(got), &viaPlugin) != nil || ops(viaPlugin) != "set,init" {
		t.Errorf("tkn-cicdstatemgr context history printed %q", got)
	}
	var viaCLI []history.Entry
	if got := cli(t, "history", "--namespace", ns, "--id", id); json.Unmarshal([]byte(got), &viaCLI) != nil || ops(viaCLI) != "decision,set,init" {
		t.Errorf("cicdstatemgr history printed %q", got)
	}

	// Attack: a CustomRun of another namespace reads the history; it is told
	// the context does not exist (the owner's runs above read it).
	other := namespace(t, "history-b")
	cr, h, text = historyRun(t, other, "steal", ns+"/"+id)
	c := cr.Status.GetCondition(apis.ConditionSucceeded)
	if cr.IsSuccessful() || c == nil || c.Reason != "ContextNotFound" || len(h) != 0 || text != "" {
		t.Fatalf("namespace %s read the history of %s/%s: %+v %q", other, ns, id, c, text)
	}
	if strings.Contains(c.Message, "1.0.1") || strings.Contains(c.Message, "alice") {
		t.Fatalf("the refusal tells about the context: %s", c.Message)
	}
	t.Logf("refused as expected: %s", c.Message)
}

// TestHistoryConcurrentWriters: CustomRuns appending to the same list at
// once (their writes race and are retried) get one entry each, and the
// entries chain: each one's old value is the previous one's new value, so
// no write was lost and none recorded twice.
func TestHistoryConcurrentWriters(t *testing.T) {
	const n = 24
	ns := namespace(t, "history-race")
	id := "race"
	initContext(t, ns, id)
	runs, _ := setBatch("add", id, n, 2*time.Minute)
	if err := <-createRuns(ns, runs, 0); err != nil {
		t.Fatal(err)
	}
	done := waitDone(t, ns, "add", n, 3*time.Minute)
	names := map[string]bool{}
	for i := range done {
		if !done[i].IsSuccessful() {
			t.Fatalf("%s did not succeed: %s", done[i].Name, summarize(done))
		}
		names[done[i].Name] = true
	}
	cr, h, text := historyRun(t, ns, "read", id)
	if !cr.IsSuccessful() || len(h) != n+1 || h[n].Op != "init" {
		t.Fatalf("%d entries, want %d sets and the init: %s", len(h), n, text)
	}
	for i, e := range h[:n] {
		if e.Op != "set" || len(e.Changes) != 1 || e.Changes[0].Path != "state.items" || !names[e.Who.CustomRun] {
			t.Fatalf("entry %d: %+v", i, e)
		}
		delete(names, e.Who.CustomRun) // one entry per run
		if prev := h[i+1]; i+1 < n && e.Changes[0].Old != prev.Changes[0].New {
			t.Fatalf("entries %d and %d do not chain: old %s, previous new %s", i, i+1, e.Changes[0].Old, prev.Changes[0].New)
		}
	}
	var items []string
	if err := json.Unmarshal([]byte(h[0].Changes[0].New), &items); err != nil || len(items) != n || len(names) != 0 {
		t.Fatalf("the last write holds %d items (%v), runs without an entry: %v", len(items), err, names)
	}
}

// withHistoryLength sets config.yaml's budgets.historyLength for the test
// (the controller reloads it without a restart); the original config.yaml is
// put back after.
func withHistoryLength(t *testing.T, n int) {
	t.Helper()
	withConfigYAML(t, func(c map[string]any) {
		budgets, _ := c["budgets"].(map[string]any)
		if budgets == nil {
			budgets = map[string]any{}
		}
		budgets["historyLength"] = n
		c["budgets"] = budgets
	})
}

// TestHistoryBoundTrimsOldest: with budgets.historyLength 5 the history
// keeps the five newest entries: the init and the first sets are trimmed.
func TestHistoryBoundTrimsOldest(t *testing.T) {
	ns := namespace(t, "history-bound")
	id := "bound"
	initContext(t, ns, id)
	withHistoryLength(t, 5)
	// The controller picks the configuration up within moments; every set
	// after that trims the history to five entries.
	deadline := time.Now().Add(60 * time.Second)
	for i := 1; ; i++ {
		cr := runOne(t, ns, customRun(fmt.Sprintf("set-%03d", i), "set", time.Minute,
			strParam("op", "set"), strParam("id", id), arrParam("set", fmt.Sprintf("state.n=%d", i))), time.Minute)
		if !cr.IsSuccessful() {
			t.Fatalf("set %d failed: %+v", i, cr.Status.GetCondition(apis.ConditionSucceeded))
		}
		_, h, text := historyRun(t, ns, fmt.Sprintf("read-%03d", i), id)
		if len(h) == 5 && i >= 5 {
			for k, e := range h {
				want := fmt.Sprintf(`"%d"`, i-k)
				if e.Op != "set" || e.Changes[0].Path != "state.n" || e.Changes[0].New != want {
					t.Fatalf("entry %d: %+v, want the set of %s (the five newest, newest first)", k, e, want)
				}
			}
			return
		}
		if len(h) > 5 && time.Now().After(deadline) {
			t.Fatalf("after %d sets the history holds %d entries, want 5 (budgets.historyLength): %s", i, len(h), text)
		}
	}
}
