// Package v1alpha1 holds the cicdstatemgr.dev/v1alpha1 API: ApprovalGate, the
// Kubernetes object of an approval gate that waits for people to decide.
//
// The controller creates one ApprovalGate per waiting CustomRun (same name and
// namespace, owned by the CustomRun). Approvers record their decision in
// spec.decisions with an ordinary update or patch of the object; the API server
// (config/*-approvalgate-policy.yaml, a ValidatingAdmissionPolicy) lets each
// user write only their own entry, and only when they are an approver. The
// controller evaluates the decisions (Evaluate) and writes status.outcome once.
//
// The types are plain structs converted to and from unstructured objects
// (runtime.DefaultUnstructuredConverter): there is no generated clientset, and
// the DeepCopy functions are written by hand.
package v1alpha1
