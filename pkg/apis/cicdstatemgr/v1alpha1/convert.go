package v1alpha1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// FromUnstructured converts an object read with the dynamic client.
func FromUnstructured(u *unstructured.Unstructured) (*ApprovalGate, error) {
	g := &ApprovalGate{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), g); err != nil {
		return nil, fmt.Errorf("ApprovalGate %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return g, nil
}

// ToUnstructured converts g for the dynamic client, with its apiVersion and
// kind set.
func ToUnstructured(g *ApprovalGate) (*unstructured.Unstructured, error) {
	c := g.DeepCopy()
	c.APIVersion, c.Kind = SchemeGroupVersion.String(), Kind
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		return nil, fmt.Errorf("ApprovalGate %s/%s: %w", g.Namespace, g.Name, err)
	}
	return &unstructured.Unstructured{Object: m}, nil
}
