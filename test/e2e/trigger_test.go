package e2e

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const triggerPipelines = `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: target}
spec:
  params: [{name: version}, {name: id}]
  results: [{name: seen, value: $(tasks.read.results.v)}]
  tasks:
  - name: read
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: get}
    - {name: id, value: $(params.id)}
    - {name: set, value: ["state.triggered=$(params.version)"]}
    - {name: get, value: [v=state.triggered]}
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: starter}
spec:
  params: [{name: id}]
  tasks:
  - name: init
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: init}
    - {name: id, value: $(params.id)}
    - {name: set, value: [state.version=3.1.4]}
    - name: app-config
      value: |
        cicd-contexts:
          stage:
            pipelines:
              starter:
                event-handlers:
                  done:
                    trigger-pipeline:
                      name: target
                      create-pipelinerun: true
                      args:
                        version: "{{ state.version }}"
                        id: "{{ state.cicdContextDataId }}"
  - name: fire
    runAfter: [init]
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: handle-event}
    - {name: id, value: $(params.id)}
    - {name: event, value: starter=done}
`

// TestTriggerCreatesPipelineRun: trigger-pipeline with create-pipelinerun
// starts the next pipeline directly (no Tekton Triggers), exactly once.
func TestTriggerCreatesPipelineRun(t *testing.T) {
	ns := namespace(t, "trigger")
	grantCreatePipelineRuns(t, ns, "default") // the starter runs as default (authority_test.go)
	kubectl(t, triggerPipelines, "-n", ns, "apply", "-f", "-")
	id := ns + "-ctx"
	kubectl(t, pipelineRun("starter-1", "starter", map[string]string{"id": id}), "-n", ns, "create", "-f", "-")
	succeeded(t, waitPipelineRun(t, ns, "starter-1", 60*time.Second))

	var name string
	deadline := time.Now().Add(30 * time.Second)
	for name == "" {
		prs, err := tekton.TektonV1().PipelineRuns(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "cicdstatemgr.dev/context-id=" + id})
		if err != nil {
			t.Fatal(err)
		}
		if len(prs.Items) > 1 {
			t.Fatalf("%d PipelineRuns created, want exactly 1", len(prs.Items))
		}
		if len(prs.Items) == 1 {
			name = prs.Items[0].Name
			if got := prs.Items[0].Labels["cicdstatemgr.dev/event"]; got != "starter.done" {
				t.Errorf("event label = %q", got)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no PipelineRun was created\n%s", describe(ns))
		}
		time.Sleep(200 * time.Millisecond)
	}
	target := waitPipelineRun(t, ns, name, 60*time.Second)
	succeeded(t, target)
	if got := prResults(target)["seen"]; got != "3.1.4" {
		t.Fatalf("the triggered pipeline saw version %q, want 3.1.4", got)
	}
	time.Sleep(time.Second)
	prs, _ := tekton.TektonV1().PipelineRuns(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "cicdstatemgr.dev/context-id=" + id})
	if len(prs.Items) != 1 {
		t.Fatalf("%d PipelineRuns with the context label, want exactly 1", len(prs.Items))
	}
}
