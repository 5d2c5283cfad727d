package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"gopkg.in/yaml.v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
)

// waitPipelineRun waits until the PipelineRun is done and returns it.
func waitPipelineRun(t *testing.T, ns, name string, timeout time.Duration) *v1.PipelineRun {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pr, err := tekton.TektonV1().PipelineRuns(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			if c := pr.Status.GetCondition(apis.ConditionSucceeded); c != nil && !c.IsUnknown() {
				return pr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("PipelineRun %s/%s not done after %s: %v\n%s", ns, name, timeout, err, describe(ns))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// describe summarises the CustomRuns of a namespace for failure messages.
func describe(ns string) string {
	runs, err := tekton.TektonV1beta1().CustomRuns(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, r := range runs.Items {
		c := r.Status.GetCondition(apis.ConditionSucceeded)
		fmt.Fprintf(&b, "  customrun %s: %v\n", r.Name, c)
	}
	log, _ := os.ReadFile(filepath.Join(stackEnv["CLUSTER_DIR"], "logs", "cicdstatemgr-controller.log"))
	if len(log) > 3000 {
		log = log[len(log)-3000:]
	}
	return b.String() + "controller log tail:\n" + string(log)
}

func succeeded(t *testing.T, pr *v1.PipelineRun) {
	t.Helper()
	if c := pr.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		t.Fatalf("PipelineRun %s: %s %s: %s\n%s", pr.Name, c.Status, c.Reason, c.Message, describe(pr.Namespace))
	}
}

func prResults(pr *v1.PipelineRun) map[string]string {
	out := map[string]string{}
	for _, r := range pr.Status.Results {
		out[r.Name] = r.Value.StringVal
		if r.Value.Type == v1.ParamTypeArray {
			out[r.Name] = strings.Join(r.Value.ArrayVal, ",")
		}
	}
	return out
}

// customRunOf returns the CustomRun of a pipeline task.
func customRunOf(t *testing.T, ns, prName, task string) *v1beta1.CustomRun {
	t.Helper()
	runs, err := tekton.TektonV1beta1().CustomRuns(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "tekton.dev/pipelineRun=" + prName + ",tekton.dev/pipelineTask=" + task,
	})
	if err != nil || len(runs.Items) != 1 {
		t.Fatalf("CustomRun of %s/%s: %v (%d found)", prName, task, err, len(runs.Items))
	}
	return &runs.Items[0]
}

// waitCustomRunDone waits until the CustomRun of a task is done.
func waitCustomRunDone(t *testing.T, ns, prName, task string, timeout time.Duration) *v1beta1.CustomRun {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		runs, _ := tekton.TektonV1beta1().CustomRuns(ns).List(context.Background(), metav1.ListOptions{
			LabelSelector: "tekton.dev/pipelineRun=" + prName + ",tekton.dev/pipelineTask=" + task,
		})
		if runs != nil && len(runs.Items) == 1 && runs.Items[0].IsDone() {
			return &runs.Items[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("CustomRun of %s/%s not done after %s\n%s", prName, task, timeout, describe(ns))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// chainPipeline is a pipeline of n tasks, each appending its index to
// state.items of the context (sequential: task i runs after i-1).
func chainPipeline(name string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: %s}
spec:
  params: [{name: id}]
  tasks:
  - name: init
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: init}
    - {name: id, value: $(params.id)}
    - {name: app-config, value: "cicd-contexts: {stage: {channel: chain}}"}
`, name)
	prev := "init"
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `  - name: add-%d
    runAfter: [%s]
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: set}
    - {name: id, value: $(params.id)}
    - {name: set, value: ["state.items[]=%d"]}
`, i, prev, i)
		prev = fmt.Sprintf("add-%d", i)
	}
	fmt.Fprintf(&b, `  - name: read
    runAfter: [%s]
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: get}
    - {name: id, value: $(params.id)}
    - {name: get, value: ["items:csv=state.items"]}
  results:
  - {name: items, value: $(tasks.read.results.items)}
`, prev)
	return b.String()
}

func pipelineRun(name, pipeline string, params map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {name: %s}\nspec:\n  pipelineRef: {name: %s}\n  params:\n", name, pipeline)
	for k, v := range params {
		fmt.Fprintf(&b, "  - {name: %s, value: %q}\n", k, v)
	}
	return b.String()
}

func expectedItems(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprint(i + 1)
	}
	return strings.Join(parts, ",")
}

// waitCustomRunReason waits until the one CustomRun matching selector has a
// Succeeded condition with reason, and returns that condition.
func waitCustomRunReason(t *testing.T, ns, selector, reason string, timeout time.Duration) *apis.Condition {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		runs, _ := tekton.TektonV1beta1().CustomRuns(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if runs != nil && len(runs.Items) == 1 {
			if c := runs.Items[0].Status.GetCondition(apis.ConditionSucceeded); c != nil && c.Reason == reason {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CustomRun %s reached reason %s within %s\n%s", selector, reason, timeout, describe(ns))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// withConfigYAML changes config-cicdstatemgr's config.yaml for the test
// (change edits the cicdstatemgr block; the controller reloads it without a
// restart) and puts the original text back when the test ends.
func withConfigYAML(t *testing.T, change func(block map[string]any)) {
	t.Helper()
	ctx := context.Background()
	cms := kube.CoreV1().ConfigMaps("cicdstatemgr")
	cm, err := cms.Get(ctx, "config-cicdstatemgr", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	original := cm.Data["config.yaml"]
	var doc map[string]map[string]any
	if err := yaml.Unmarshal([]byte(original), &doc); err != nil {
		t.Fatal(err)
	}
	change(doc["cicdstatemgr"])
	text, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	set := func(text string) error {
		cm, err := cms.Get(ctx, "config-cicdstatemgr", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cm.Data["config.yaml"] = text
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	}
	if err := set(string(text)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := set(original); err != nil {
			t.Errorf("restoring config.yaml: %v", err)
		}
	})
}
