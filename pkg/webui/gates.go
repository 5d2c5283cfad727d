package webui

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
)

// MaxMessageBytes bounds the comment of a decision made on the page.
const MaxMessageBytes = 1024

// ViewerClients returns the ViewerClient of Options: a dynamic client of the
// API server of cfg that authenticates with the viewer's token alone (cfg's
// own credentials are dropped; no impersonation), so the API server applies
// the viewer's RBAC and the ApprovalGate admission policy to them.
func ViewerClients(cfg *rest.Config) func(token string) (dynamic.Interface, error) {
	return func(token string) (dynamic.Interface, error) {
		c := rest.AnonymousClientConfig(cfg)
		c.BearerToken = token
		c.QPS, c.Burst = 5, 10
		c.Timeout = 10 * time.Second
		return dynamic.NewForConfig(c)
	}
}

// gateView is a gate as the page shows it.
type gateView struct {
	Name, Namespace, Title string
	PipelineRun, Task      string
	ContextRef             string
	Options                []v1alpha1.Option
	Approvals, State       string
	Decisions              []v1alpha1.Decision
	Users, Groups          []string
	RequestedBy            string
	ForbidSelfApproval     bool
	Pending                bool
	Outcome                v1alpha1.Outcome
	Created                time.Time
	ViewerIsApprover       bool
	DecideURL, ContextURL  string
}

// listGates lists the gates of ns with the viewer's client (their RBAC
// applies): pending first, the longest waiting on top, at most MaxGates.
// contextRef, when set, keeps the gates of that context only.
func listGates(ctx context.Context, c dynamic.Interface, v *Viewer, ns, contextRef string) (gates []gateView, more bool, err error) {
	l, err := c.Resource(v1alpha1.ApprovalGatesResource).Namespace(ns).List(ctx, metav1.ListOptions{Limit: MaxGates})
	if err != nil {
		return nil, false, err
	}
	for i := range l.Items {
		g, err := v1alpha1.FromUnstructured(&l.Items[i])
		if err != nil {
			continue // a malformed object is not shown; kubectl still shows it
		}
		if contextRef != "" && g.Spec.ContextID != contextRef {
			continue
		}
		gates = append(gates, viewOf(g, v))
	}
	sort.SliceStable(gates, func(i, j int) bool {
		if gates[i].Pending != gates[j].Pending {
			return gates[i].Pending
		}
		return gates[i].Created.Before(gates[j].Created)
	})
	return gates, l.GetContinue() != "", nil
}

func viewOf(g *v1alpha1.ApprovalGate, v *Viewer) gateView {
	state := g.Status.Outcome.State
	if state == "" {
		state = v1alpha1.StatePending
	}
	approvals := g.Status.Approvals
	if approvals == "" {
		approvals = g.Spec.Evaluate().Summary()
	}
	gv := gateView{
		Name: g.Name, Namespace: g.Namespace, Title: g.Spec.Title,
		PipelineRun: g.Labels["tekton.dev/pipelineRun"], Task: g.Labels["tekton.dev/pipelineTask"],
		ContextRef: g.Spec.ContextID, Options: g.Spec.Options, Approvals: approvals, State: state,
		Decisions: g.Spec.Decisions, Users: g.Spec.Approvers.Users, Groups: g.Spec.Approvers.Groups,
		RequestedBy: g.Spec.RequestedBy, ForbidSelfApproval: g.Spec.ForbidSelfApproval,
		Pending: !g.Status.Outcome.IsDecided(), Outcome: g.Status.Outcome, Created: g.CreationTimestamp.Time,
		ViewerIsApprover: namedApprover(g.Spec.Approvers, v),
		DecideURL:        gateURL(g.Namespace, g.Name) + "/decide",
	}
	if ns, id, ok := strings.Cut(g.Spec.ContextID, "/"); ok {
		gv.ContextURL = contextURL(ns, id)
	}
	return gv
}

// namedApprover says whether the gate names the viewer (a hint on the page;
// the admission policy decides).
func namedApprover(a v1alpha1.Approvers, v *Viewer) bool {
	for _, u := range a.Users {
		if u == v.Name() {
			return true
		}
	}
	for _, g := range a.Groups {
		for _, mine := range v.User.Groups {
			if g == mine {
				return true
			}
		}
	}
	return false
}

// decision is what the decide form asks.
type decision struct {
	Action, Option, Message string
}

func (d decision) check() error {
	switch {
	case d.Action != v1alpha1.ActionApprove && d.Action != v1alpha1.ActionReject:
		return fmt.Errorf("action must be approve or reject")
	case d.Action == v1alpha1.ActionReject && d.Option != "":
		return fmt.Errorf("a rejection names no option")
	case len(d.Message) > MaxMessageBytes:
		return fmt.Errorf("the message is %d bytes long, at most %d allowed", len(d.Message), MaxMessageBytes)
	}
	return nil
}

var (
	// errDecided: the gate has an outcome already.
	errDecided = errors.New("the gate is already decided")
	// errNotOffered: the option is not one of the gate's.
	errNotOffered = errors.New("the gate offers no such option")
)

// decide writes the viewer's decision on gate ns/name as the viewer, with a
// JSON patch of their own entry of spec.decisions and nothing else (as `tkn
// cicdstatemgr gates approve` does). RBAC and the admission policy accept or
// refuse it; their refusal is returned as is.
func decide(ctx context.Context, c dynamic.Interface, v *Viewer, ns, name string, d decision) (*v1alpha1.ApprovalGate, error) {
	gates := c.Resource(v1alpha1.ApprovalGatesResource).Namespace(ns)
	u, err := gates.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	g, err := v1alpha1.FromUnstructured(u)
	if err != nil {
		return nil, err
	}
	if g.Status.Outcome.IsDecided() {
		return g, fmt.Errorf("%w (%s)", errDecided, g.Status.Outcome.State)
	}
	if d.Option != "" && !g.Spec.HasOption(d.Option) {
		return g, fmt.Errorf("%w: %q", errNotOffered, d.Option)
	}
	me := v.Name()
	entry := v1alpha1.Decision{By: me, Via: v1alpha1.ViaKubernetes, Action: d.Action, Option: d.Option,
		Message: d.Message, At: &metav1.Time{Time: time.Now().UTC().Truncate(time.Second)}}
	b, err := v1alpha1.DecisionPatch(g.Spec.Decisions, entry)
	if err != nil {
		return g, err
	}
	if _, err := gates.Patch(ctx, name, types.JSONPatchType, b, metav1.PatchOptions{}); err != nil {
		return g, err
	}
	return g, nil
}

// refusal is what the page says about an error of the API server: its own
// message for a refusal (the admission policy's "alice is not an approver of
// this gate"), a generic one otherwise.
func refusal(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Message
	}
	return err.Error()
}
