package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/logging"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/cloudevents"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// GatePollInterval is how often a waiting CustomRun looks for a decision
// made elsewhere (the CLI, another replica). Decisions made through this
// controller's HTTP endpoint wake it at once.
var GatePollInterval = 2 * time.Second

// awaitDecision keeps a CustomRun whose op opened an approval gate Running
// until its gate has an outcome; then it records the decision in the state
// and ends the run: Succeeded with the results choice, chosen-by, reason and
// decided-at, or failed with ReasonGateRejected. Timeouts and cancellation
// end the wait in ReconcileKind (closeGate).
//
// With ApprovalGates (the controller), the gate is also an ApprovalGate
// object where approvers vote; what the votes add up to is committed in the
// Redis gate record, where a CLI decision, a timeout or a cancellation may
// have come first: the first of them is the one outcome.
func (r *Reconciler) awaitDecision(ctx context.Context, run *v1beta1.CustomRun, p *params, eng *engine.Engine, out *engine.Outcome) kreconciler.Event {
	if eng.Gates == nil {
		return r.fail(run, p, engine.Errorf(engine.ReasonInvalidConfig, "the op opened an approval gate but no choice store is configured"))
	}
	r.gates.Store(out.Waiting, types.NamespacedName{Namespace: run.Namespace, Name: run.Name})
	pending, decision, err := eng.Gates.Get(ctx, out.Waiting)
	if err != nil {
		return r.transient(ctx, run, p, engine.AsError(err, engine.ReasonStoreUnavailable))
	}
	var ag *v1alpha1.ApprovalGate
	if r.Approvals != nil {
		gp, err := parseGateParams(run)
		if err == nil && gp.onTimeoutOption() != "" && !pending.HasOption(gp.onTimeoutOption()) {
			err = invalid("param %q: %q is neither fail nor one of the gate's options", ParamOnTimeout, gp.onTimeout)
		}
		if err != nil {
			r.closeRedisGate(ctx, eng, out.Waiting)
			return r.fail(run, p, err)
		}
		if ag, err = r.Approvals.ensure(ctx, run, gp, pending); err != nil {
			return r.transient(ctx, run, p, engine.AsError(fmt.Errorf("approval gate %s/%s: %w", run.Namespace, run.Name, err), ReasonConfigError))
		}
		if decision == nil {
			if decision, err = r.commitVotes(ctx, eng, out.Waiting, ag); err != nil {
				return r.transient(ctx, run, p, engine.AsError(err, engine.ReasonStoreUnavailable))
			}
		}
		if decision == nil {
			r.Approvals.sync(ctx, run, ag, pending, nil, "", "")
		}
	}
	if decision == nil {
		// once per gate and process: the first reconcile to find it waiting
		if _, sent := r.announced.LoadOrStore(out.Waiting, true); !sent {
			r.emitGate(cloudevents.TypeGateWaiting, run, p, pending, nil, "")
		}
		run.Status.MarkCustomRunRunning(ReasonWaitingForDecision, "%s", waitingMessage(p.id, run, pending))
		return controller.NewRequeueAfter(r.untilTimeout(run, GatePollInterval))
	}
	return r.finishGate(ctx, run, p, eng, out, pending, *decision, ag)
}

// commitVotes commits the outcome the gate's votes add up to, if any, and
// returns the winning decision (nil while the votes decide nothing, or when
// the gate was closed first).
func (r *Reconciler) commitVotes(ctx context.Context, eng *engine.Engine, key string, ag *v1alpha1.ApprovalGate) (*gate.Decision, error) {
	ev := ag.Spec.Evaluate()
	if !ev.Outcome.IsDecided() {
		return nil, nil
	}
	return commit(ctx, eng, key, committedDecision(ag, ev.Outcome))
}

// commit records d unless another decision won first (then that one is
// returned) or the gate is closed (nil).
func commit(ctx context.Context, eng *engine.Engine, key string, d gate.Decision) (*gate.Decision, error) {
	won, err := eng.Gates.Commit(ctx, key, d)
	switch {
	case err == nil, errors.Is(err, gate.ErrAlreadyDecided):
		return &won, nil
	case errors.Is(err, gate.ErrCancelled), errors.Is(err, gate.ErrNotFound):
		return nil, nil
	}
	return nil, err
}

// finishGate records the winning decision in the state and ends the run with it.
func (r *Reconciler) finishGate(ctx context.Context, run *v1beta1.CustomRun, p *params, eng *engine.Engine, out *engine.Outcome, pending gate.Gate, d gate.Decision, ag *v1alpha1.ApprovalGate) kreconciler.Event {
	if err := eng.RecordDecision(ctx, store.Ref(p.context(run.Namespace)), string(run.UID)+"/choice", pending, d); err != nil {
		e := engine.AsError(err, engine.ReasonStoreUnavailable)
		if e.Transient {
			return r.transient(ctx, run, p, e)
		}
		return r.fail(run, p, e)
	}
	if ag != nil {
		r.Approvals.sync(ctx, run, ag, pending, &d, "", "")
	}
	r.gates.Delete(pending.Key)
	r.emitGate(cloudevents.TypeGateDecided, run, p, pending, &d, "")
	out.Results = append(out.Results,
		engine.Result{Name: ResultChoice, Value: d.Choice},
		engine.Result{Name: ResultChosenBy, Value: d.ChosenBy},
		engine.Result{Name: ResultReason, Value: d.Reason},
		engine.Result{Name: ResultDecidedAt, Value: d.At.UTC().Format(time.RFC3339)})
	logging.FromContext(ctx).Infow("approval gate decided", "choice", d.Choice, "by", d.ChosenBy, "via", d.Via, "outcome", d.Outcome)
	if d.Outcome == gate.OutcomeRejected {
		r.attempts.Delete(run.UID)
		run.Status.Results = buildResults(p, out)
		run.Status.CompletionTime = &metav1.Time{Time: r.Clock.Now()}
		msg := "the approval gate was rejected by " + strings.ReplaceAll(d.ChosenBy, ",", ", ")
		if d.Reason != "" {
			msg += ": " + d.Reason
		}
		run.Status.MarkCustomRunFailed(ReasonGateRejected, "%s", msg)
		return kreconciler.NewEvent(corev1.EventTypeWarning, ReasonGateRejected, "%s", msg)
	}
	return r.succeed(run, p, out)
}

func waitingMessage(id string, run *v1beta1.CustomRun, p gate.Gate) string {
	vals := make([]string, len(p.Options))
	for i, o := range p.Options {
		vals[i] = o.Value
	}
	return fmt.Sprintf("waiting for a choice (%s): click a button in Slack, or run `tkn cicdstatemgr gates approve -n %s %s --option <value>` (operators: `cicdstatemgr decide --id %s --option <value>`)",
		strings.Join(vals, ", "), run.Namespace, run.Name, id)
}

// closeGate ends the approval gate of a run that was cancelled or timed out,
// so that a late click is told it no longer counts. The gate's own outcome
// ends the run instead on a timeout when one was committed first (a quorum
// reached, a CLI decision) or the on-timeout option applies: the run is done
// on return then, with the event of a rejection returned (a success has
// none). Otherwise it returns nil and the run ends as cancelled or timed
// out.
func (r *Reconciler) closeGate(ctx context.Context, run *v1beta1.CustomRun) kreconciler.Event {
	eng, _, err := r.Source.Current()
	if err != nil || eng.Gates == nil {
		return nil
	}
	key := string(run.UID)
	pending, decision, err := eng.Gates.Get(ctx, key)
	if err != nil {
		if !errors.Is(err, gate.ErrNotFound) {
			logging.FromContext(ctx).Infow("could not read the approval gate", "error", err)
		}
		return nil
	}
	var ag *v1alpha1.ApprovalGate
	if r.Approvals != nil {
		if ag, err = r.Approvals.gateOf(ctx, run); err != nil {
			logging.FromContext(ctx).Infow("could not read the approval gate object", "error", err)
		}
	}
	timedOut := !run.IsCancelled()
	if timedOut && decision == nil && ag != nil {
		decision, _ = r.commitVotes(ctx, eng, key, ag)
	}
	if gp, perr := parseGateParams(run); timedOut && decision == nil && perr == nil && gp.onTimeoutOption() != "" {
		decision, _ = commit(ctx, eng, key, gate.Decision{Choice: gp.onTimeoutOption(), ChosenBy: v1alpha1.ChosenByTimeout,
			Via: gate.ViaTimeout, Outcome: gate.OutcomeTimedOut, Reason: "no decision within " + run.GetTimeout().String()})
	}
	if decision == nil {
		if err := eng.Gates.Cancel(ctx, key); err != nil {
			logging.FromContext(ctx).Infow("could not close the approval gate", "error", err)
		}
		// a decision may have come in just before the close
		if _, d, err := eng.Gates.Get(ctx, key); err == nil {
			decision = d
		}
	}
	if decision != nil && timedOut {
		return r.finishGate(ctx, run, lenientParams(run), eng, &engine.Outcome{}, pending, *decision, ag)
	}
	state, why := v1alpha1.StateCancelled, "the CustomRun was cancelled"
	if timedOut {
		state, why = v1alpha1.StateTimedOut, "no decision within "+run.GetTimeout().String()
	}
	if ag != nil {
		r.Approvals.sync(ctx, run, ag, pending, decision, state, why)
	}
	r.emitGate(cloudevents.TypeGateDecided, run, lenientParams(run), pending, decision, state)
	r.gates.Delete(key)
	return nil
}

// closeRedisGate closes the Redis gate of a run that fails before waiting.
func (r *Reconciler) closeRedisGate(ctx context.Context, eng *engine.Engine, key string) {
	if err := eng.Gates.Cancel(ctx, key); err != nil {
		logging.FromContext(ctx).Infow("could not close the approval gate", "error", err)
	}
	r.gates.Delete(key)
}

// untilTimeout bounds a requeue delay by the time left before the timeout.
func (r *Reconciler) untilTimeout(run *v1beta1.CustomRun, d time.Duration) time.Duration {
	if t := run.GetTimeout(); t > 0 && run.Status.StartTime != nil {
		if left := t - r.Clock.Since(run.Status.StartTime.Time); left+10*time.Millisecond < d {
			d = left + 10*time.Millisecond
		}
	}
	if d <= 0 {
		d = 10 * time.Millisecond
	}
	return d
}

// WakeGate returns the CustomRun waiting on a gate key, for the decision
// hook to enqueue it at once.
func (r *Reconciler) WakeGate(key string) (types.NamespacedName, bool) {
	v, ok := r.gates.Load(key)
	if !ok {
		return types.NamespacedName{}, false
	}
	return v.(types.NamespacedName), true
}

// emitGate sends a gate event about p (pkg/cloudevents): subject the context
// namespace/id, data what the gate asks and its outcome (d, else closed).
func (r *Reconciler) emitGate(typ string, run *v1beta1.CustomRun, p *params, pending gate.Gate, d *gate.Decision, closed string) {
	if typ == cloudevents.TypeGateDecided {
		r.announced.Delete(pending.Key)
	}
	ns, id := p.context(run.Namespace)
	r.CloudEvents.Emit(typ, store.Ref(ns, id), cloudevents.GateData(ns, id, run.Name, pending, d, closed))
}
