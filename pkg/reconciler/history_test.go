package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	fakekube "k8s.io/client-go/kubernetes/fake"
	testclock "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
)

func runResult(run *v1beta1.CustomRun, name string) (string, bool) {
	for _, r := range run.Status.Results {
		if r.Name == name {
			return r.Value, true
		}
	}
	return "", false
}

// TestOpHistory: a CustomRun's set is recorded as its own (namespace, name,
// PipelineRun, pipeline task), once however often it is reconciled; op history returns the entries as JSON,
// newest first, filtered by path and limit; bad params fail the run with
// InvalidParams and still write the history result (empty).
func TestOpHistory(t *testing.T) {
	src, _ := newSource(t, redisSrv.Addr)
	seedContext(t, src)
	r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset()}
	reconcile := func(uid, labels, params string) *v1beta1.CustomRun {
		t.Helper()
		y := fmt.Sprintf(`
metadata: {name: run-%s, namespace: ns, uid: %s, labels: {%s}}
spec:
  customRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
  params: %s`, uid, uid, labels, params)
		run := parseRun(t, y)
		r.ReconcileKind(context.Background(), run)
		return run
	}
	set := reconcile("u1", `tekton.dev/pipelineRun: build-7, tekton.dev/pipelineTask: bump`,
		`[{name: op, value: set}, {name: id, value: ctx-1}, {name: set, value: [state.k=w, state.other=x]}]`)
	if !set.IsSuccessful() {
		t.Fatalf("set: %+v", set.Status)
	}
	// the same CustomRun reconciled again (a requeue, a restart) replays its
	// recorded outcome and records nothing more
	for i := 0; i < 2; i++ {
		if again := reconcile("u1", `tekton.dev/pipelineRun: build-7, tekton.dev/pipelineTask: bump`,
			`[{name: op, value: set}, {name: id, value: ctx-1}, {name: set, value: [state.k=w, state.other=x]}]`); !again.IsSuccessful() {
			t.Fatalf("repeated set: %+v", again.Status)
		}
	}
	run := reconcile("u2", ``, `[{name: op, value: history}, {name: id, value: ctx-1}]`)
	checkStatus(t, run, wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{"id": "ctx-1"}}, nil)
	text, ok := runResult(run, ResultHistory)
	var h []history.Entry
	if !ok || json.Unmarshal([]byte(text), &h) != nil || len(h) != 2 {
		t.Fatalf("history result %q", text)
	}
	want := history.Who{Namespace: "ns", CustomRun: "run-u1", PipelineRun: "build-7", PipelineTask: "bump"}
	if h[0].Op != "set" || h[0].Who != want || h[0].Changes[0] != (history.Change{Path: "state.k", Old: `"v"`, New: `"w"`}) {
		t.Fatalf("newest entry: %+v", h[0])
	}
	if h[1].Op != "init" {
		t.Fatalf("oldest entry: %+v", h[1])
	}

	run = reconcile("u3", ``, `[{name: op, value: history}, {name: id, value: ctx-1}, {name: path, value: state.other}, {name: limit, value: "5"}]`)
	text, _ = runResult(run, ResultHistory)
	if !run.IsSuccessful() || json.Unmarshal([]byte(text), &h) != nil || len(h) != 1 || h[0].Op != "set" {
		t.Fatalf("history of state.other: %q %+v", text, run.Status)
	}

	for name, c := range map[string]struct{ params, message string }{
		"zero limit":        {`[{name: op, value: history}, {name: id, value: ctx-1}, {name: limit, value: "0"}]`, `param "limit": "0" is not a positive number`},
		"word limit":        {`[{name: op, value: history}, {name: id, value: ctx-1}, {name: limit, value: many}]`, `param "limit": "many"`},
		"bad path":          {`[{name: op, value: history}, {name: id, value: ctx-1}, {name: path, value: "a..b"}]`, "not a dotted path"},
		"with a set":        {`[{name: op, value: history}, {name: id, value: ctx-1}, {name: set, value: [state.a=1]}]`, `param "set" is not for op history`},
		"path with a get":   {`[{name: op, value: get}, {name: id, value: ctx-1}, {name: get, value: [a=state.k]}, {name: path, value: state}]`, `param "path" is only for op history`},
		"missing context":   {`[{name: op, value: history}, {name: id, value: nope}]`, "not found"},
		"another namespace": {`[{name: op, value: history}, {name: id, value: other/ctx-1}]`, "not found"},
	} {
		run := reconcile("bad", ``, c.params)
		cond := run.Status.GetCondition(apis.ConditionSucceeded)
		if run.IsSuccessful() || cond == nil || !strings.Contains(cond.Message, c.message) {
			t.Errorf("%s: %+v, want a failure with %q", name, cond, c.message)
			continue
		}
		if reason := cond.Reason; reason != engine.ReasonInvalidParams && reason != engine.ReasonContextNotFound {
			t.Errorf("%s: reason %s", name, reason)
		}
		if _, ok := runResult(run, ResultHistory); !ok && strings.Contains(c.params, "value: history") && !strings.Contains(name, "set") {
			t.Errorf("%s: the failed run has no history result", name)
		}
	}
}
