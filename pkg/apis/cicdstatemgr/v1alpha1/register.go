package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The API group, version, kind and resource of ApprovalGate.
const (
	GroupName = "cicdstatemgr.dev"
	Version   = "v1alpha1"
	Kind      = "ApprovalGate"
	Resource  = "approvalgates"
)

var (
	// SchemeGroupVersion is cicdstatemgr.dev/v1alpha1.
	SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: Version}
	// Resource of ApprovalGates, for the dynamic client.
	ApprovalGatesResource = SchemeGroupVersion.WithResource(Resource)
	// ApprovalGateKind is the GroupVersionKind of ApprovalGate.
	ApprovalGateKind = SchemeGroupVersion.WithKind(Kind)
)
