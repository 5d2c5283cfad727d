package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/apis"
)

// TestExamples runs examples/ as a user would: the build pipeline creates a
// context from an app config with bases, the deploy pipeline loads it by id.
func TestExamples(t *testing.T) {
	ns := namespace(t, "examples")
	for _, f := range []string{"01-app-config.yaml", "02-build-pipeline.yaml", "03-deploy-pipeline.yaml"} {
		kubectl(t, "", "-n", ns, "apply", "-f", filepath.Join(root, "examples", f))
	}
	runs, err := os.ReadFile(filepath.Join(root, "examples", "04-runs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(runs), "\n---\n")
	kubectl(t, docs[0], "-n", ns, "create", "-f", "-")
	build := waitPipelineRun(t, ns, "build-myapp-1-2-0", 60*time.Second)
	succeeded(t, build)
	want := map[string]string{
		"image":     "registry.example.com/myapp:1.2.0",
		"namespace": "apps-dev",
		"greeting":  "myapp is owned by platform-team",
		"built-by":  "build-myapp-1-2-0",
	}
	got := prResults(build)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("build result %s = %q, want %q", k, got[k], v)
		}
	}
	kubectl(t, docs[1], "-n", ns, "create", "-f", "-")
	deploy := waitPipelineRun(t, ns, "deploy-myapp-1-2-0", 60*time.Second)
	succeeded(t, deploy)
	got = prResults(deploy)
	want = map[string]string{
		"image":     "registry.example.com/myapp:1.2.0", // written by the build pipeline
		"namespace": "apps-dev",
		"replicas":  "2", // the app config overrides the base's 1
		"history":   "deployed by deploy-myapp-1-2-0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("deploy result %s = %q, want %q", k, got[k], v)
		}
	}
}

// TestBadParamsFailThePipelineRun: our reason is on the CustomRun and the
// PipelineRun fails.
func TestBadParamsFailThePipelineRun(t *testing.T) {
	ns := namespace(t, "badparams")
	kubectl(t, `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: bad}
spec:
  tasks:
  - name: oops
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: frobnicate}
    - {name: id, value: x}
`, "-n", ns, "apply", "-f", "-")
	kubectl(t, pipelineRun("bad-1", "bad", nil), "-n", ns, "create", "-f", "-")
	pr := waitPipelineRun(t, ns, "bad-1", 60*time.Second)
	if c := pr.Status.GetCondition(apis.ConditionSucceeded); !c.IsFalse() {
		t.Fatalf("PipelineRun should fail: %+v", c)
	}
	cr := customRunOf(t, ns, "bad-1", "oops")
	c := cr.Status.GetCondition(apis.ConditionSucceeded)
	if c.Reason != "InvalidParams" || !strings.Contains(c.Message, `unknown op "frobnicate"`) {
		t.Fatalf("CustomRun condition %s: %s", c.Reason, c.Message)
	}
}

// TestTimeoutAndCancel: with Redis down an op keeps retrying; a PipelineTask
// timeout ends it with CustomRunTimedOut, a PipelineRun cancel with
// CustomRunCancelled. Nothing is written afterwards.
func TestTimeoutAndCancel(t *testing.T) {
	ns := namespace(t, "timeout")
	kubectl(t, `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: slow}
spec:
  tasks:
  - name: stuck
    timeout: 3s
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: get}
    - {name: id, value: nowhere}
    - {name: get, value: [a=state.a]}
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: cancelme}
spec:
  tasks:
  - name: stuck
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: get}
    - {name: id, value: nowhere}
    - {name: get, value: [a=state.a]}
`, "-n", ns, "apply", "-f", "-")
	if err := stack("stop-redis"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stack("start-redis"); err != nil {
			t.Errorf("restarting redis: %v", err)
		}
	})
	kubectl(t, pipelineRun("slow-1", "slow", nil), "-n", ns, "create", "-f", "-")
	kubectl(t, pipelineRun("cancel-1", "cancelme", nil), "-n", ns, "create", "-f", "-")

	// the cancel target must be running (retrying) before we cancel it
	waitCustomRunReason(t, ns, "tekton.dev/pipelineRun=cancel-1", "Retrying", 30*time.Second)
	_, err := tekton.TektonV1().PipelineRuns(ns).Patch(context.Background(), "cancel-1", types.MergePatchType,
		[]byte(`{"spec":{"status":"Cancelled"}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slow := waitCustomRunDone(t, ns, "slow-1", "stuck", 60*time.Second)
	if c := slow.Status.GetCondition(apis.ConditionSucceeded); c.Reason != string(v1beta1.CustomRunReasonTimedOut) {
		t.Errorf("timed-out CustomRun: %s %s", c.Reason, c.Message)
	}
	cancelled := waitCustomRunDone(t, ns, "cancel-1", "stuck", 60*time.Second)
	if c := cancelled.Status.GetCondition(apis.ConditionSucceeded); c.Reason != string(v1beta1.CustomRunReasonCancelled) {
		t.Errorf("cancelled CustomRun: %s %s", c.Reason, c.Message)
	}
	for _, name := range []string{"slow-1", "cancel-1"} {
		pr := waitPipelineRun(t, ns, name, 60*time.Second)
		if c := pr.Status.GetCondition(apis.ConditionSucceeded); !c.IsFalse() {
			t.Errorf("PipelineRun %s should have failed: %+v", name, c)
		}
	}
}

// TestControllerKilledMidRun: SIGKILL our controller while a pipeline of
// sequential appends runs, start it again: the run completes and every
// append is applied exactly once.
func TestControllerKilledMidRun(t *testing.T) {
	chainThroughOutage(t, "killctl", []string{"stop-controller", "--kill"}, []string{"start-controller"}, 2*time.Second)
}

// TestRedisRestartedMidRun: stop Redis while a pipeline runs, start it
// again: the run completes with nothing lost and nothing applied twice.
func TestRedisRestartedMidRun(t *testing.T) {
	chainThroughOutage(t, "redisrestart", []string{"stop-redis"}, []string{"start-redis"}, 3*time.Second)
}

// chainThroughOutage runs a pipeline of sequential appends, takes a part of
// the stack down (stop) once the third append is done, brings it back
// (start) after pause, and checks the run completes with every append
// applied exactly once.
func chainThroughOutage(t *testing.T, name string, stop, start []string, pause time.Duration) {
	t.Helper()
	ns := namespace(t, name)
	const n = 12
	kubectl(t, chainPipeline("chain", n), "-n", ns, "apply", "-f", "-")
	kubectl(t, pipelineRun("chain-1", "chain", map[string]string{"id": ns + "-ctx"}), "-n", ns, "create", "-f", "-")
	waitCustomRunDone(t, ns, "chain-1", "add-3", 60*time.Second)
	if err := stack(stop...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pause)
	if err := stack(start...); err != nil {
		t.Fatal(err)
	}
	pr := waitPipelineRun(t, ns, "chain-1", 120*time.Second)
	succeeded(t, pr)
	if got := prResults(pr)["items"]; got != expectedItems(n) {
		t.Fatalf("items = %q, want %q (each append exactly once)", got, expectedItems(n))
	}
}

// TestControllerRunsWithItsOwnRBAC: the controller authenticates as its
// ServiceAccount; config/'s RBAC grants what it needs and not more.
func TestControllerRunsWithItsOwnRBAC(t *testing.T) {
	sa := "system:serviceaccount:cicdstatemgr:cicdstatemgr-controller"
	allowed := [][]string{
		{"get", "customruns.tekton.dev", "-n", "default"},
		{"update", "customruns.tekton.dev/status", "-n", "default"},
		{"create", "events", "-n", "default"},
		{"get", "configmaps", "-n", "default"},
		{"get", "secrets/cicdstatemgr-secrets", "-n", "cicdstatemgr"},
		{"watch", "secrets/cicdstatemgr-secrets", "-n", "cicdstatemgr"},
		{"create", "leases.coordination.k8s.io", "-n", "cicdstatemgr"},
	}
	denied := [][]string{
		{"get", "secrets", "-n", "default"},
		// its own Secret by name only: no list or watch of every Secret,
		// not even in its own namespace
		{"list", "secrets", "-n", "cicdstatemgr"},
		{"watch", "secrets", "-n", "cicdstatemgr"},
		{"get", "secrets/another", "-n", "cicdstatemgr"},
		{"list", "configmaps", "-n", "default"},
		{"delete", "customruns.tekton.dev", "-n", "default"},
		{"create", "pods", "-n", "default"},
	}
	for _, a := range allowed {
		if out := kubectl(t, "", append([]string{"auth", "can-i", "--as", sa}, a...)...); strings.TrimSpace(out) != "yes" {
			t.Errorf("the controller cannot %v", a)
		}
	}
	for _, d := range denied {
		cmdArgs := append([]string{"auth", "can-i", "--as", sa}, d...)
		out, _ := execKubectl(cmdArgs...)
		if strings.TrimSpace(out) != "no" {
			t.Errorf("the controller may %v (%q): too much", d, out)
		}
	}
	kc, err := os.ReadFile(filepath.Join(stackEnv["CLUSTER_DIR"], "controller.kubeconfig"))
	if err != nil || !strings.Contains(string(kc), "token:") || strings.Contains(string(kc), "client-certificate") {
		t.Fatalf("the controller does not run with a ServiceAccount token kubeconfig: %v", err)
	}
}
