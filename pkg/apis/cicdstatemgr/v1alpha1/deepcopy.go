package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime"
)

// The DeepCopy functions are written by hand (no code generation): every
// slice and pointer below is copied.

// DeepCopyInto copies g into out.
func (g *ApprovalGate) DeepCopyInto(out *ApprovalGate) {
	*out = *g
	out.TypeMeta = g.TypeMeta
	g.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	g.Spec.DeepCopyInto(&out.Spec)
	g.Status.DeepCopyInto(&out.Status)
}

// DeepCopy returns a copy of g.
func (g *ApprovalGate) DeepCopy() *ApprovalGate {
	if g == nil {
		return nil
	}
	out := new(ApprovalGate)
	g.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (g *ApprovalGate) DeepCopyObject() runtime.Object { return g.DeepCopy() }

// DeepCopyInto copies l into out.
func (l *ApprovalGateList) DeepCopyInto(out *ApprovalGateList) {
	*out = *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]ApprovalGate, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopy returns a copy of l.
func (l *ApprovalGateList) DeepCopy() *ApprovalGateList {
	if l == nil {
		return nil
	}
	out := new(ApprovalGateList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *ApprovalGateList) DeepCopyObject() runtime.Object { return l.DeepCopy() }

// DeepCopyInto copies s into out.
func (s *ApprovalGateSpec) DeepCopyInto(out *ApprovalGateSpec) {
	*out = *s
	out.Options = append([]Option(nil), s.Options...)
	s.Approvers.DeepCopyInto(&out.Approvers)
	out.Decisions = copyDecisions(s.Decisions)
}

// DeepCopyInto copies a into out.
func (a *Approvers) DeepCopyInto(out *Approvers) {
	out.Users = append([]string(nil), a.Users...)
	out.Groups = append([]string(nil), a.Groups...)
	out.SlackUsers = append([]string(nil), a.SlackUsers...)
	out.SlackUserGroups = append([]string(nil), a.SlackUserGroups...)
}

// DeepCopyInto copies d into out.
func (d *Decision) DeepCopyInto(out *Decision) {
	*out = *d
	if d.At != nil {
		out.At = d.At.DeepCopy()
	}
}

// DeepCopyInto copies s into out.
func (s *ApprovalGateStatus) DeepCopyInto(out *ApprovalGateStatus) {
	*out = *s
	out.Decisions = copyDecisions(s.Decisions)
	s.Outcome.DeepCopyInto(&out.Outcome)
}

// DeepCopyInto copies o into out.
func (o *Outcome) DeepCopyInto(out *Outcome) {
	*out = *o
	out.ChosenBy = append([]string(nil), o.ChosenBy...)
	if o.DecidedAt != nil {
		out.DecidedAt = o.DecidedAt.DeepCopy()
	}
}

func copyDecisions(in []Decision) []Decision {
	if in == nil {
		return nil
	}
	out := make([]Decision, len(in))
	for i := range in {
		in[i].DeepCopyInto(&out[i])
	}
	return out
}
