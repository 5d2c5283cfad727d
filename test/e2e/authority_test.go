package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
)

// grantCreatePipelineRuns lets service account sa of ns create PipelineRuns
// there (a Role and a RoleBinding): what create-pipelinerun requires of the
// pipeline that asks.
func grantCreatePipelineRuns(t *testing.T, ns, sa string) {
	t.Helper()
	kubectl(t, fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pipelinerun-creator}
rules:
- apiGroups: [tekton.dev]
  resources: [pipelineruns]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: %[1]s-creates-pipelineruns}
subjects: [{kind: ServiceAccount, name: %[1]s, namespace: %[2]s}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pipelinerun-creator}
`, sa, ns), "-n", ns, "apply", "-f", "-")
}

// authorityTarget is what the triggers start: a pipeline of CicdState
// custom tasks (no pods).
const authorityTarget = `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: target}
spec:
  params: [{name: id}]
  results: [{name: seen, value: $(tasks.read.results.v)}]
  tasks:
  - name: read
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: get}
    - {name: id, value: $(params.id)}
    - {name: get, value: [v=state.version]}
`

// starterPipeline inits a context whose event starter=done runs a
// trigger-pipeline block with the given create-pipelinerun setting, then
// fires the event.
func starterPipeline(name, createPipelineRun string) string {
	block := "trigger-pipeline:\n  name: target\n  args:\n    id: \"{{ state.cicdContextDataId }}\"\n  create-pipelinerun:" + createPipelineRun
	appConfig := "cicd-contexts:\n  stage:\n    pipelines:\n      " + name + ":\n        event-handlers:\n          done:\n" + indentLines(block, "            ")
	return fmt.Sprintf(`apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: %[1]s}
spec:
  params: [{name: id}]
  tasks:
  - name: init
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: init}
    - {name: id, value: $(params.id)}
    - {name: set, value: [state.version=2.7.1]}
    - name: app-config
      value: |
%[2]s
  - name: fire
    runAfter: [init]
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: handle-event}
    - {name: id, value: $(params.id)}
    - {name: event, value: %[1]s=done}
`, name, indentLines(appConfig, "        "))
}

func indentLines(s, by string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = by + l
	}
	return strings.Join(lines, "\n")
}

// templateSetting is a create-pipelinerun setting with a template whose
// spec is spec (YAML lines of a PipelineRun spec).
func templateSetting(spec string) string {
	t := "apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {generateName: target-}\nspec:\n" + indentLines(spec, "  ") +
		"\n  params: [{name: id, value: \"{{ payload.id }}\"}]"
	return "\n    template: |\n" + indentLines(t, "      ")
}

// startAs runs pipeline in ns as service account sa and waits until it is
// done; it returns the PipelineRun's name.
func startAs(t *testing.T, ns, pipeline, sa, id string) string {
	t.Helper()
	name := pipeline + "-run"
	kubectl(t, fmt.Sprintf(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: %s}
spec:
  pipelineRef: {name: %s}
  taskRunTemplate: {serviceAccountName: %s}
  params: [{name: id, value: %q}]
`, name, pipeline, sa, id), "-n", ns, "create", "-f", "-")
	waitPipelineRun(t, ns, name, 90*time.Second)
	return name
}

// triggered lists the PipelineRuns created for context id.
func triggered(t *testing.T, ns, id string) []string {
	t.Helper()
	prs, err := tekton.TektonV1().PipelineRuns(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "cicdstatemgr.dev/context-id=" + id})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, pr := range prs.Items {
		out = append(out, pr.Name)
	}
	return out
}

// TestCreatePipelineRunActsWithTheAskersAuthority: create-pipelinerun
// creates only what the asking pipeline could have created itself, under
// real RBAC (docs/security.md, "The controller acts with the asker's
// authority").
func TestCreatePipelineRunActsWithTheAskersAuthority(t *testing.T) {
	ns := namespace(t, "authority")
	kubectl(t, "", "-n", ns, "create", "serviceaccount", "builder")
	kubectl(t, "", "-n", ns, "create", "serviceaccount", "nobody")
	kubectl(t, "", "-n", ns, "create", "serviceaccount", "admin-sa")
	grantCreatePipelineRuns(t, ns, "builder") // nobody may not create PipelineRuns
	inline := "pipelineSpec:\n  params: [{name: id}]\n  tasks:\n  - name: steal\n    taskSpec:\n      steps:\n      - {name: s, image: alpine, script: 'cat /var/run/secrets/kubernetes.io/serviceaccount/token'}"
	kubectl(t, authorityTarget+"---\n"+
		starterPipeline("positive", " true")+"---\n"+
		starterPipeline("other-sa", templateSetting("pipelineRef: {name: target}\ntaskRunTemplate: {serviceAccountName: admin-sa}"))+"---\n"+
		starterPipeline("inline", templateSetting(inline))+"---\n"+
		starterPipeline("denied", " true"),
		"-n", ns, "apply", "-f", "-")

	// refused: fire fails with reason and a message naming the fix, and no
	// PipelineRun appears
	refused := func(t *testing.T, pipeline, sa, reason string, says ...string) {
		id := ns + "-" + pipeline
		pr := startAs(t, ns, pipeline, sa, id)
		fire := customRunOf(t, ns, pr, "fire")
		c := fire.Status.GetCondition(apis.ConditionSucceeded)
		if c == nil || !c.IsFalse() || c.Reason != reason {
			t.Fatalf("fire: %v, want %s\n%s", c, reason, describe(ns))
		}
		for _, s := range says {
			if !strings.Contains(c.Message, s) {
				t.Errorf("message %q does not say %q", c.Message, s)
			}
		}
		time.Sleep(time.Second)
		if got := triggered(t, ns, id); len(got) != 0 {
			t.Fatalf("PipelineRuns created although refused: %v", got)
		}
	}

	t.Run("positive control: runs as the asker's service account, once", func(t *testing.T) {
		id := ns + "-positive"
		pr := startAs(t, ns, "positive", "builder", id)
		succeeded(t, waitPipelineRun(t, ns, pr, time.Second))
		var got []string
		for deadline := time.Now().Add(30 * time.Second); len(got) == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			got = triggered(t, ns, id)
		}
		if len(got) != 1 {
			t.Fatalf("%d PipelineRuns created, want exactly 1\n%s", len(got), describe(ns))
		}
		target := waitPipelineRun(t, ns, got[0], 60*time.Second)
		succeeded(t, target)
		if sa := target.Spec.TaskRunTemplate.ServiceAccountName; sa != "builder" {
			t.Errorf("the created PipelineRun runs as %q, want builder", sa)
		}
		if by := target.Labels["cicdstatemgr.dev/asked-by"]; by != pr {
			t.Errorf("asked-by label %q, want %s", by, pr)
		}
		if v := prResults(target)["seen"]; v != "2.7.1" {
			t.Errorf("the created pipeline saw %q", v)
		}
		time.Sleep(time.Second)
		if got := triggered(t, ns, id); len(got) != 1 {
			t.Fatalf("%d PipelineRuns, want exactly 1", len(got))
		}
	})
	t.Run("a template naming another service account is refused", func(t *testing.T) {
		refused(t, "other-sa", "builder", "InvalidAppConfig", `"admin-sa"`, `only as "builder"`, "remove spec.taskRunTemplate.serviceAccountName")
	})
	t.Run("an inline taskSpec is refused", func(t *testing.T) {
		refused(t, "inline", "builder", "InvalidAppConfig", "spec.pipelineSpec.tasks[0].taskSpec", "allowInlineSpecs: true")
	})
	t.Run("a service account that may not create PipelineRuns is refused", func(t *testing.T) {
		refused(t, "denied", "nobody", "EventHandlerFailed", `service account "nobody"`, "may not create PipelineRuns in namespace "+ns)
	})
	t.Run("a CustomRun made by hand cannot borrow a PipelineRun's authority", func(t *testing.T) {
		// a CustomRun that claims (by label) to belong to the positive
		// control's PipelineRun, which runs as builder, but is not its child
		id := ns + "-positive"
		kubectl(t, fmt.Sprintf(`apiVersion: tekton.dev/v1beta1
kind: CustomRun
metadata:
  name: by-hand
  labels: {tekton.dev/pipelineRun: positive-run, tekton.dev/pipelineTask: fire}
spec:
  customRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
  params:
  - {name: op, value: handle-event}
  - {name: id, value: %q}
  - {name: event, value: positive=done}
`, id), "-n", ns, "create", "-f", "-")
		var c *apis.Condition
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			run, err := tekton.TektonV1beta1().CustomRuns(ns).Get(context.Background(), "by-hand", metav1.GetOptions{})
			if err == nil && run.IsDone() {
				c = run.Status.GetCondition(apis.ConditionSucceeded)
				break
			}
		}
		if c == nil || !c.IsFalse() || c.Reason != "EventHandlerFailed" || !strings.Contains(c.Message, "does not list CustomRun by-hand") {
			t.Fatalf("by-hand: %v, want EventHandlerFailed (not a child)\n%s", c, describe(ns))
		}
		if got := triggered(t, ns, id); len(got) != 1 {
			t.Fatalf("%d PipelineRuns for the context, want still 1", len(got))
		}
	})
}
