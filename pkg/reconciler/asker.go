package reconciler

import (
	"strings"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
)

// Labels Tekton puts on the CustomRuns of a PipelineRun.
const (
	labelPipelineRun  = "tekton.dev/pipelineRun"
	labelPipelineTask = "tekton.dev/pipelineTask"
)

// askingRun says who asked for the op: the CustomRun and the PipelineRun
// owning it (its ownerReference of kind PipelineRun, else the
// tekton.dev/pipelineRun label). Handlers that act on the cluster verify it
// (pkg/trigger); nothing here is trusted on its own.
func askingRun(run *v1beta1.CustomRun) engine.AskingRun {
	a := engine.AskingRun{Namespace: run.Namespace, CustomRun: run.Name, CustomRunUID: string(run.UID),
		PipelineTask: run.Labels[labelPipelineTask]}
	for _, o := range run.OwnerReferences {
		if o.Kind == "PipelineRun" && strings.HasPrefix(o.APIVersion, "tekton.dev/") {
			a.PipelineRun, a.PipelineRunUID = o.Name, string(o.UID)
			return a
		}
	}
	a.PipelineRun = run.Labels[labelPipelineRun]
	return a
}
