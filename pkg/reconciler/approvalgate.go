package reconciler

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	listers "github.com/tektoncd/pipeline/pkg/client/listers/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/logging"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
)

// ReasonGateRejected ends a run whose approval gate was rejected; the message
// says who rejected it and why.
const ReasonGateRejected = "ApprovalGateRejected"

// Events on the CustomRun of an approval gate.
const (
	// EventGateDecision: one approver's decision was counted.
	EventGateDecision = "ApprovalGateDecision"
	// EventGateDecided: the gate has its outcome.
	EventGateDecided = "ApprovalGateDecided"
)

// ApprovalGates keeps the ApprovalGate objects of waiting CustomRuns: it
// creates them, keeps their status in step with the decisions, and records
// the votes of Slack clicks in them.
type ApprovalGates struct {
	Client dynamic.Interface
	// Lister reads ApprovalGates from the informer's cache.
	Lister cache.GenericLister
	// Runs reads CustomRuns from the informer's cache.
	Runs   listers.CustomRunLister
	Source EngineSource
	Clock  clock.PassiveClock
	// Metrics count outcomes and their latency (nil: none).
	Metrics *GateMetrics
}

func (a *ApprovalGates) resource(ns string) dynamic.ResourceInterface {
	return a.Client.Resource(v1alpha1.ApprovalGatesResource).Namespace(ns)
}

// get reads a gate from the cache, else (the cache may lag a create) from the
// API server.
func (a *ApprovalGates) get(ctx context.Context, ns, name string) (*v1alpha1.ApprovalGate, error) {
	if obj, err := a.Lister.ByNamespace(ns).Get(name); err == nil {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			return v1alpha1.FromUnstructured(u)
		}
	}
	u, err := a.resource(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return v1alpha1.FromUnstructured(u)
}

// gateOf is the gate of run, nil when it has none (or only one left over by
// an earlier run of the same name).
func (a *ApprovalGates) gateOf(ctx context.Context, run *v1beta1.CustomRun) (*v1alpha1.ApprovalGate, error) {
	ag, err := a.get(ctx, run.Namespace, run.Name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if ag.Spec.CustomRun.UID != run.UID {
		return nil, nil
	}
	return ag, nil
}

// ensure returns the gate of run, creating it (named and owned by the run, in
// its namespace) when it does not exist yet. A gate of the same name left by
// an earlier CustomRun is replaced.
func (a *ApprovalGates) ensure(ctx context.Context, run *v1beta1.CustomRun, gp gateParams, p gate.Gate) (*v1alpha1.ApprovalGate, error) {
	ag, err := a.get(ctx, run.Namespace, run.Name)
	switch {
	case err == nil && ag.Spec.CustomRun.UID == run.UID:
		return ag, nil
	case err == nil:
		if err := a.resource(run.Namespace).Delete(ctx, run.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &ag.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
	case !apierrors.IsNotFound(err):
		return nil, err
	}
	u, err := v1alpha1.ToUnstructured(newApprovalGate(run, gp, p))
	if err != nil {
		return nil, err
	}
	created, err := a.resource(run.Namespace).Create(ctx, u, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return a.get(ctx, run.Namespace, run.Name)
	}
	if err != nil {
		return nil, err
	}
	ag, err = v1alpha1.FromUnstructured(created)
	if err != nil {
		return nil, err
	}
	// The status subresource ignores status on create: Pending is written now.
	ev := ag.Spec.Evaluate()
	ag.Status.Approvals, ag.Status.Outcome = ev.Summary(), v1alpha1.Outcome{State: v1alpha1.StatePending}
	return a.updateStatus(ctx, ag)
}

// newApprovalGate is the gate of run: what the Redis gate p asks, and who
// may answer from the run's params. The Slack user ids are the handler's
// allowed-users.
func newApprovalGate(run *v1beta1.CustomRun, gp gateParams, p gate.Gate) *v1alpha1.ApprovalGate {
	lbl := map[string]string{v1alpha1.LabelGateKey: p.Key, "app.kubernetes.io/managed-by": ControllerName}
	for _, k := range []string{"tekton.dev/pipelineRun", "tekton.dev/pipelineTask"} {
		if v := run.Labels[k]; v != "" {
			lbl[k] = v
		}
	}
	approvers := gp.approvers
	approvers.SlackUsers = p.AllowedUsers
	ag := &v1alpha1.ApprovalGate{
		ObjectMeta: metav1.ObjectMeta{
			Name: run.Name, Namespace: run.Namespace, Labels: lbl,
			// Deleted with its CustomRun (by the garbage collector; the
			// controller also deletes it when it sees the run go).
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "tekton.dev/v1beta1", Kind: "CustomRun", Name: run.Name, UID: run.UID, Controller: ptr.To(true)}},
		},
		Spec: v1alpha1.ApprovalGateSpec{
			Title: p.Title, Approvers: approvers,
			ApprovalsRequired: gp.approvalsRequired, RejectionsRequired: gp.rejectionsRequired,
			ForbidSelfApproval: gp.forbidSelf, RequestedBy: gp.requestedBy, OnTimeout: gp.onTimeout,
			CustomRun: v1alpha1.CustomRunRef{Name: run.Name, UID: run.UID},
			ContextID: p.ContextID, Pipeline: p.Pipeline, Event: p.Event,
		},
	}
	for _, o := range p.Options {
		ag.Spec.Options = append(ag.Spec.Options, v1alpha1.Option{Text: o.Text, Value: o.Value})
	}
	return ag
}

func (a *ApprovalGates) updateStatus(ctx context.Context, ag *v1alpha1.ApprovalGate) (*v1alpha1.ApprovalGate, error) {
	u, err := v1alpha1.ToUnstructured(ag)
	if err != nil {
		return nil, err
	}
	out, err := a.resource(ag.Namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	return v1alpha1.FromUnstructured(out)
}

// committedDecision is what the object's outcome commits in the Redis gate
// record (and the state): every decider, in order, comma-separated.
func committedDecision(ag *v1alpha1.ApprovalGate, o v1alpha1.Outcome) gate.Decision {
	d := gate.Decision{Choice: o.Choice, ChosenBy: strings.Join(o.ChosenBy, ","), Reason: o.Reason}
	if o.State == v1alpha1.StateRejected {
		d.Outcome = gate.OutcomeRejected
	}
	var vias []string
	byName := map[string]v1alpha1.Decision{}
	for _, x := range ag.Spec.Decisions {
		byName[x.By] = x
	}
	for _, by := range o.ChosenBy {
		if v := byName[by].Via; v != "" && !contains(vias, v) {
			vias = append(vias, v)
		} else if v == "" && !contains(vias, v1alpha1.ViaKubernetes) {
			vias = append(vias, v1alpha1.ViaKubernetes)
		}
	}
	d.Via = strings.Join(vias, ",")
	// A single Slack decider is also the verified user id, as a click decided
	// before gates had objects.
	if len(o.ChosenBy) == 1 && byName[o.ChosenBy[0]].Via == v1alpha1.ViaSlack {
		d.UserID, d.UserName = o.ChosenBy[0], byName[o.ChosenBy[0]].UserName
	}
	return d
}

// gateOutcome is the object's outcome of a decision committed in Redis.
func gateOutcome(d gate.Decision) v1alpha1.Outcome {
	o := v1alpha1.Outcome{State: v1alpha1.StateApproved, Choice: d.Choice, Reason: d.Reason, DecidedAt: &metav1.Time{Time: d.At}}
	switch d.Outcome {
	case gate.OutcomeRejected:
		o.State = v1alpha1.StateRejected
	case gate.OutcomeTimedOut:
		o.State = v1alpha1.StateTimedOut
	}
	if d.ChosenBy != "" {
		o.ChosenBy = strings.Split(d.ChosenBy, ",")
	}
	return o
}

// gateStatus is what ag's status should be: the counted decisions (each
// stamped with the time the controller first saw it), the approvals so far,
// and the outcome: the committed decision d, else closed (Cancelled or
// TimedOut) when not empty, else Pending. A decided outcome is never changed.
func (a *ApprovalGates) gateStatus(ag *v1alpha1.ApprovalGate, d *gate.Decision, closed, why string) (v1alpha1.ApprovalGateStatus, []v1alpha1.Decision) {
	now := metav1.Time{Time: a.Clock.Now().UTC().Truncate(1e9)}
	ev := ag.Spec.Evaluate()
	var st v1alpha1.ApprovalGateStatus
	ag.Status.DeepCopyInto(&st)
	seen := map[string]v1alpha1.Decision{}
	for _, x := range ag.Status.Decisions {
		seen[x.By] = x
	}
	var fresh []v1alpha1.Decision
	st.Decisions = nil
	for _, x := range ev.Counted {
		if x.Action == v1alpha1.ActionApprove {
			x.Option = ag.Spec.OptionOf(x) // the option approved, also when left empty
		}
		if x.Via == "" {
			x.Via = v1alpha1.ViaKubernetes
		}
		x.At = &now
		if old, ok := seen[x.By]; ok && old.Action == x.Action && old.Option == x.Option && old.Message == x.Message && old.At != nil {
			x.At = old.At
		} else {
			fresh = append(fresh, x)
		}
		st.Decisions = append(st.Decisions, x)
	}
	if d != nil && d.Via == gate.ViaCLI {
		// an operator's decision straight in Redis, mirrored for the record
		x := v1alpha1.Decision{By: d.ChosenBy, Via: v1alpha1.ViaCLI, Action: v1alpha1.ActionApprove, Option: d.Choice, At: &metav1.Time{Time: d.At}}
		if _, ok := seen[x.By]; !ok {
			fresh = append(fresh, x)
		}
		st.Decisions = append(st.Decisions, x)
	}
	st.Approvals = ev.Summary()
	switch {
	case ag.Status.Outcome.IsDecided():
	case d != nil:
		st.Outcome = gateOutcome(*d)
	case closed != "":
		st.Outcome = v1alpha1.Outcome{State: closed, Reason: why, DecidedAt: &now}
	default:
		st.Outcome = v1alpha1.Outcome{State: v1alpha1.StatePending}
	}
	return st, fresh
}

// sync brings ag's status (and its Slack message) in step; events on run say
// which decisions were counted and the outcome.
func (a *ApprovalGates) sync(ctx context.Context, run *v1beta1.CustomRun, ag *v1alpha1.ApprovalGate, p gate.Gate, d *gate.Decision, closed, why string) {
	st, fresh := a.gateStatus(ag, d, closed, why)
	if rec := controller.GetEventRecorder(ctx); rec != nil {
		for _, x := range fresh {
			rec.Eventf(run, corev1.EventTypeNormal, EventGateDecision, "%s", describeDecision(x))
		}
		if st.Outcome.IsDecided() && !ag.Status.Outcome.IsDecided() {
			rec.Eventf(run, corev1.EventTypeNormal, EventGateDecided, "approval gate %s: %s", ag.Name, summary(ag.Spec, st))
		}
	}
	next := ag.DeepCopy()
	next.Status = st
	next.Status.SlackNotified = a.notifySlack(ctx, next, p)
	if reflect.DeepEqual(next.Status, ag.Status) {
		return
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		_, err := a.updateStatus(ctx, next)
		if apierrors.IsConflict(err) {
			cur, gerr := a.resource(ag.Namespace).Get(ctx, ag.Name, metav1.GetOptions{})
			if gerr != nil {
				return gerr
			}
			next.ResourceVersion = cur.GetResourceVersion()
		}
		return err
	})
	if err != nil {
		logging.FromContext(ctx).Infow("could not update the approval gate's status", "gate", ag.Name, "error", err)
		return
	}
	if st.Outcome.IsDecided() && !ag.Status.Outcome.IsDecided() {
		a.Metrics.decided(st.Outcome.State, a.Clock.Since(ag.CreationTimestamp.Time))
	}
}

func describeDecision(x v1alpha1.Decision) string {
	s := fmt.Sprintf("%s (%s) rejected", x.By, x.Via)
	if x.Action == v1alpha1.ActionApprove {
		s = fmt.Sprintf("%s (%s) approved %s", x.By, x.Via, x.Option)
	}
	if x.Message != "" {
		s += ": " + x.Message
	}
	return s
}

// summary says in one line where the gate stands.
func summary(spec v1alpha1.ApprovalGateSpec, st v1alpha1.ApprovalGateStatus) string {
	o := st.Outcome
	by := strings.Join(o.ChosenBy, ", ")
	s := ""
	switch o.State {
	case v1alpha1.StateApproved:
		s = fmt.Sprintf("approved: %s by %s", o.Choice, by)
	case v1alpha1.StateRejected:
		s = "rejected by " + by
	case v1alpha1.StateTimedOut:
		s = "timed out"
		if o.Choice != "" {
			s += ": took " + o.Choice
		}
	case v1alpha1.StateCancelled:
		s = "cancelled"
	default:
		return fmt.Sprintf("waiting: %s approvals", st.Approvals)
	}
	if o.Reason != "" {
		s += " (" + o.Reason + ")"
	}
	return s
}

// deleteOf deletes the gate of a deleted CustomRun: owner references do this
// where a garbage collector runs; this covers clusters without one.
func (a *ApprovalGates) deleteOf(ctx context.Context, run *v1beta1.CustomRun) {
	// only an op with an event can have waited on a gate: the deletion of any
	// other (most CustomRuns) costs no read of the API
	if paramString(run, ParamEvent) == "" {
		return
	}
	ag, err := a.get(ctx, run.Namespace, run.Name)
	if err != nil || ag.Spec.CustomRun.UID != run.UID {
		return
	}
	err = a.resource(run.Namespace).Delete(ctx, run.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &ag.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		logging.FromContext(ctx).Infow("could not delete the approval gate of a deleted CustomRun", "gate", run.Namespace+"/"+run.Name, "error", err)
	}
}

// byKey finds the gate whose label holds the Redis gate key.
func (a *ApprovalGates) byKey(ctx context.Context, key string) (*v1alpha1.ApprovalGate, error) {
	sel := labels.SelectorFromSet(labels.Set{v1alpha1.LabelGateKey: key})
	if objs, err := a.Lister.List(sel); err == nil && len(objs) > 0 {
		if u, ok := objs[0].(*unstructured.Unstructured); ok {
			return v1alpha1.FromUnstructured(u)
		}
	}
	l, err := a.Client.Resource(v1alpha1.ApprovalGatesResource).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	if len(l.Items) == 0 {
		return nil, nil
	}
	return v1alpha1.FromUnstructured(&l.Items[0])
}

// isRun reports whether a CustomRun of ours has the UID key (its gate object
// is about to be created).
func (a *ApprovalGates) isRun(key string) bool {
	runs, err := a.Runs.List(labels.Everything())
	if err != nil {
		return false
	}
	for _, r := range runs {
		if string(r.UID) == key && isOurs(r) && !r.IsDone() {
			return true
		}
	}
	return false
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
