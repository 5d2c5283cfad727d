package reconciler

import (
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
)

func TestAskingRun(t *testing.T) {
	run := &v1beta1.CustomRun{ObjectMeta: metav1.ObjectMeta{Name: "pr-1-fire", Namespace: "ns", UID: "cr",
		Labels: map[string]string{labelPipelineRun: "pr-1", labelPipelineTask: "fire"},
		OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "cm"},
			{APIVersion: "tekton.dev/v1", Kind: "PipelineRun", Name: "pr-1", UID: "pr"},
		}}}
	want := engine.AskingRun{Namespace: "ns", CustomRun: "pr-1-fire", CustomRunUID: "cr", PipelineTask: "fire", PipelineRun: "pr-1", PipelineRunUID: "pr"}
	if got := askingRun(run); got != want {
		t.Errorf("owned: %+v", got)
	}
	run.OwnerReferences = nil
	want.PipelineRunUID = ""
	if got := askingRun(run); got != want {
		t.Errorf("label only: %+v", got)
	}
	run.Labels = nil
	if got := askingRun(run); got.PipelineRun != "" {
		t.Errorf("alone: %+v", got)
	}
}
