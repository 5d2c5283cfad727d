// Package reconciler reconciles Tekton CustomRuns whose customRef is
// cicdstatemgr.dev/v1alpha1 CicdState: it validates the params, runs the
// operation with the engine against Redis, and writes the outcome back as
// results and a Succeeded condition (docs/design.md).
package reconciler
