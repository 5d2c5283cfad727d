package engine

import "context"

// AskingRun says who asked for an op: the CustomRun running it and the
// PipelineRun that CustomRun belongs to. Event handlers that act on the
// cluster (create-pipelinerun, pkg/trigger) act with the authority of that
// PipelineRun, never with the controller's own. The controller puts it in
// the op's context (WithAskingRun); the CLI has none.
type AskingRun struct {
	// Namespace and name of the CustomRun.
	Namespace, CustomRun string
	CustomRunUID         string
	// PipelineTask is the CustomRun's task in its pipeline (label
	// tekton.dev/pipelineTask); empty when unknown.
	PipelineTask string
	// PipelineRun is the CustomRun's owner of kind PipelineRun (its
	// ownerReference, else the tekton.dev/pipelineRun label); empty when
	// the CustomRun does not belong to a PipelineRun. PipelineRunUID is the
	// ownerReference's uid (empty when only the label names it).
	PipelineRun, PipelineRunUID string
}

type askingRunKey struct{}

// WithAskingRun returns ctx carrying a.
func WithAskingRun(ctx context.Context, a AskingRun) context.Context {
	return context.WithValue(ctx, askingRunKey{}, a)
}

// AskingRunFrom returns the AskingRun of ctx; false when there is none (the
// CLI).
func AskingRunFrom(ctx context.Context) (AskingRun, bool) {
	a, ok := ctx.Value(askingRunKey{}).(AskingRun)
	return a, ok
}
