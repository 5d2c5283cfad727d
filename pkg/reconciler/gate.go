package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/logging"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// GatePollInterval is how often a waiting CustomRun looks for a decision
// made elsewhere (the CLI, another replica). Decisions made through this
// controller's HTTP endpoint wake it at once.
var GatePollInterval = 2 * time.Second

// awaitDecision keeps a CustomRun whose op opened an approval gate Running
// until a decision arrives; then it records the decision in the state and
// succeeds with the results choice and chosen-by. Timeouts and cancellation
// end the wait in ReconcileKind.
func (r *Reconciler) awaitDecision(ctx context.Context, run *v1beta1.CustomRun, p *params, eng *engine.Engine, out *engine.Outcome) kreconciler.Event {
	if eng.Gates == nil {
		return r.fail(run, p, engine.Errorf(engine.ReasonInvalidConfig, "the op opened an approval gate but no choice store is configured"))
	}
	r.gates.Store(out.Waiting, types.NamespacedName{Namespace: run.Namespace, Name: run.Name})
	pending, decision, err := eng.Gates.Get(ctx, out.Waiting)
	if err != nil {
		return r.transient(ctx, run, p, engine.AsError(err, engine.ReasonStoreUnavailable))
	}
	if decision == nil {
		run.Status.MarkCustomRunRunning(ReasonWaitingForDecision, "%s", waitingMessage(p.id, pending))
		return controller.NewRequeueAfter(r.untilTimeout(run, GatePollInterval))
	}
	if err := eng.RecordDecision(ctx, store.Ref(p.context(run.Namespace)), string(run.UID)+"/choice", pending, *decision); err != nil {
		e := engine.AsError(err, engine.ReasonStoreUnavailable)
		if e.Transient {
			return r.transient(ctx, run, p, e)
		}
		return r.fail(run, p, e)
	}
	r.gates.Delete(out.Waiting)
	out.Results = append(out.Results,
		engine.Result{Name: ResultChoice, Value: decision.Choice},
		engine.Result{Name: ResultChosenBy, Value: decision.ChosenBy})
	logging.FromContext(ctx).Infow("choice made", "choice", decision.Choice, "by", decision.ChosenBy, "via", decision.Via)
	return r.succeed(run, p, out)
}

func waitingMessage(id string, p gate.Gate) string {
	vals := make([]string, len(p.Options))
	for i, o := range p.Options {
		vals[i] = o.Value
	}
	return fmt.Sprintf("waiting for a choice (%s): click a button in Slack, or run `cicdstatemgr decide --id %s --option <value>`",
		strings.Join(vals, ", "), id)
}

// closeGate cancels the approval gate of a run that was cancelled or timed
// out, so that a late click is told it no longer counts.
func (r *Reconciler) closeGate(ctx context.Context, run *v1beta1.CustomRun) {
	eng, _, err := r.Source.Current()
	if err != nil || eng.Gates == nil {
		return
	}
	key := string(run.UID)
	if err := eng.Gates.Cancel(ctx, key); err != nil && !errors.Is(err, gate.ErrNotFound) {
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
