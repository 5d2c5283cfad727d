package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	customrunreconciler "github.com/tektoncd/pipeline/pkg/client/injection/reconciler/pipeline/v1beta1/customrun"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/logging"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/cloudevents"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/observability"
)

// The custom task this controller owns.
const (
	APIVersion = "cicdstatemgr.dev/v1alpha1"
	Kind       = "CicdState"
)

// Reasons of the Succeeded condition besides the engine's failure reasons.
const (
	ReasonRunning   = "Running"
	ReasonRetrying  = "Retrying"
	ReasonSucceeded = "Succeeded"
	ReasonCancelled = string(v1beta1.CustomRunReasonCancelled)
	ReasonTimedOut  = string(v1beta1.CustomRunReasonTimedOut)
	// ReasonUnexpectedRef is for a CustomRun routed to us with a customRef name
	// or a customSpec: CicdState has no named definitions.
	ReasonUnexpectedRef = "UnexpectedCustomRef"
	ReasonConfigError   = "ConfigUnavailable"
	// ReasonWaitingForDecision: a manual-choice gate (wait: true) waits for
	// someone to decide.
	ReasonWaitingForDecision = "WaitingForDecision"
)

// EngineSource hands out the engine built from the current configuration.
// It errors while the configuration is missing or invalid.
type EngineSource interface {
	Current() (*engine.Engine, *config.Config, error)
}

// Reconciler reconciles CicdState CustomRuns.
type Reconciler struct {
	Clock      clock.PassiveClock
	Source     EngineSource
	KubeClient kubernetes.Interface
	Metrics    *Metrics
	// Approvals keeps the ApprovalGate objects of waiting runs (nil: gates
	// live in Redis only, as in table tests).
	Approvals *ApprovalGates
	// CloudEvents receives the gate events (nil: none are sent).
	CloudEvents *cloudevents.Emitter

	// MaxBackoff bounds the wait between retries of transient failures.
	MaxBackoff time.Duration
	// InlineWait is how long a reconcile waits for its op before leaving
	// it to run alone (ops.go); DefaultInlineWait when 0.
	InlineWait time.Duration

	attempts sync.Map // CustomRun UID -> int, transient failures so far
	gates    sync.Map // gate key -> types.NamespacedName of the waiting CustomRun
	// announced holds the keys of gates whose gate.waiting CloudEvent was sent
	announced sync.Map

	// enqueue asks for a reconcile of a CustomRun (set by NewController; nil
	// in table tests, where the requeue delay stands in for it).
	enqueue func(types.NamespacedName)
	ops     runningOps // the ops started by this process (ops.go)
}

var _ customrunreconciler.Interface = (*Reconciler)(nil)

// ReconcileKind implements customrunreconciler.Interface.
func (r *Reconciler) ReconcileKind(ctx context.Context, run *v1beta1.CustomRun) kreconciler.Event {
	logger := logging.FromContext(ctx)
	if !isOurs(run) {
		return nil
	}
	ctx, span := observability.StartReconcile(ctx, run.Namespace, run.Name)
	defer span.End()
	if run.IsDone() {
		r.stopOp(run.UID)
		r.attempts.Delete(run.UID)
		return nil
	}
	if !run.HasStarted() {
		run.Status.InitializeConditions()
		run.Status.StartTime = &metav1.Time{Time: r.Clock.Now()}
		// No Started event (nor a Succeeded one, see succeed): an event per op
		// is an API write per CustomRun.
		run.Status.MarkCustomRunRunning(ReasonRunning, "Running op %s", paramString(run, ParamOp))
	}
	if run.Spec.CustomRef != nil && run.Spec.CustomRef.Name != "" {
		return r.fail(run, nil, engine.Errorf(ReasonUnexpectedRef, "customRef.name %q is not supported: reference apiVersion %s kind %s without a name", run.Spec.CustomRef.Name, APIVersion, Kind))
	}
	if run.IsCancelled() || run.HasTimedOut(r.Clock) {
		r.stopOp(run.UID)
		// a gate's outcome committed first, or its on-timeout option, ends
		// a timed-out run instead; its decision is recorded with the
		// redaction and history bounds of the configuration in force
		if _, cfg, err := r.Source.Current(); err == nil {
			ctx = engine.WithConfig(ctx, cfg)
		}
		// (a gate that ended the run successfully returns no event)
		if ev := r.closeGate(ctx, run); ev != nil || run.IsDone() {
			return ev
		}
	}
	if run.IsCancelled() {
		msg := run.Spec.StatusMessage
		if msg == "" {
			msg = "the CustomRun was cancelled"
		}
		return r.fail(run, nil, engine.Errorf(ReasonCancelled, "%s", msg))
	}
	if run.HasTimedOut(r.Clock) {
		return r.timedOut(run)
	}

	p, err := parseParams(run)
	if err != nil {
		return r.fail(run, nil, err)
	}
	eng, cfg, err := r.Source.Current()
	if err != nil {
		return r.transient(ctx, run, p, engine.Errorf(ReasonConfigError, "%v", err))
	}
	ctx = engine.WithConfig(ctx, cfg) // a gate's decision is recorded with its redaction
	if err := p.checkBudgets(cfg.Budgets()); err != nil {
		r.Metrics.countBudget(err)
		return r.fail(run, p, err)
	}
	o := r.ops.find(run)
	fresh := o == nil // the op's first reconcile: later ones find it running
	if fresh {
		req, err := r.request(ctx, run, p, cfg)
		if err != nil {
			if e := engine.AsError(err, engine.ReasonInvalidParams); e.Transient {
				return r.transient(ctx, run, p, e)
			}
			return r.fail(run, p, err)
		}
		o = r.startOp(ctx, run, eng, *req)
	}
	out, err, pending := r.awaitOp(run, o, fresh)
	if pending {
		run.Status.MarkCustomRunRunning(ReasonOpInProgress, "op %s is still running (an endpoint is slow to answer); the CustomRun goes on when it ends", p.op)
		return controller.NewRequeueAfter(r.untilTimeout(run, r.opTimeout(run)))
	}
	if err != nil {
		e := engine.AsError(err, engine.ReasonInvalidParams)
		if e.Transient || errors.Is(err, context.DeadlineExceeded) {
			return r.transient(ctx, run, p, e)
		}
		logger.Infow("op failed", "op", p.op, "reason", e.Reason, "message", e.Message)
		return r.fail(run, p, e)
	}
	if out.Waiting != "" {
		return r.awaitDecision(ctx, run, p, eng, out)
	}
	return r.succeed(run, p, out)
}

func isOurs(run *v1beta1.CustomRun) bool {
	ref := run.Spec.CustomRef
	return ref != nil && ref.APIVersion == APIVersion && string(ref.Kind) == Kind
}

func paramString(run *v1beta1.CustomRun, name string) string {
	if p := run.Spec.GetParam(name); p != nil {
		return p.Value.StringVal
	}
	return ""
}

// opTimeout is how long one attempt at the op may take: the rest of the
// CustomRun's timeout, at most a minute.
func (r *Reconciler) opTimeout(run *v1beta1.CustomRun) time.Duration {
	d := time.Minute
	if t := run.GetTimeout(); t > 0 {
		left := t - r.Clock.Since(run.Status.StartTime.Time)
		if left < d {
			d = left
		}
	}
	if d < time.Second {
		d = time.Second
	}
	return d
}

// request turns params into an engine request, reading the app config and
// bases ConfigMaps the params point at.
func (r *Reconciler) request(ctx context.Context, run *v1beta1.CustomRun, p *params, cfg *config.Config) (*engine.Request, error) {
	owner, id := p.context(run.Namespace)
	req := &engine.Request{
		Op: p.op, ID: id, Config: cfg, Namespace: owner, Asker: run.Namespace, CicdContext: p.cicdContext, Sets: p.sets, Vars: p.vars,
		Event: p.event, Generator: p.generator, OpKey: string(run.UID), Who: whoOf(run),
		HistoryPath: p.historyPath, HistoryLimit: p.historyLimit,
	}
	for _, g := range p.gets {
		req.Gets = append(req.Gets, engine.GetSpec{Name: g.name, Expr: g.expr, Format: g.format})
	}
	if p.ttl != "" {
		d, err := time.ParseDuration(p.ttl)
		if err != nil || d < 0 {
			return nil, invalid("param %q: %q is not a duration like 720h", ParamTTL, p.ttl)
		}
		req.TTL = d
	} else if rc, err := cfg.Redis(); err == nil {
		req.TTL = rc.TTL // the admin's default (datasources.redis.ttl), as in the CLI
	}
	if p.op != engine.OpInit {
		return req, nil
	}
	req.AppConfig = []byte(p.appConfig)
	if p.appConfigRef != nil {
		text, err := r.configMapKey(ctx, run.Namespace, p.appConfigRef.name, p.appConfigRef.key)
		if err != nil {
			return nil, err
		}
		req.AppConfig = []byte(text)
	}
	req.Bases = r.basesLoader(ctx, run.Namespace, p.basesRef)
	return req, nil
}

// DefaultBasesConfigMap holds base files when no bases-ref param is given.
const DefaultBasesConfigMap = "cicdstatemgr-bases"

func (r *Reconciler) basesLoader(ctx context.Context, namespace, ref string) engine.BaseLoader {
	name := DefaultBasesConfigMap
	if ref != "" {
		name = strings.TrimPrefix(ref, "configmap/")
	}
	return func(file string) ([]byte, error) {
		text, err := r.configMapKey(ctx, namespace, name, file)
		if err != nil {
			return nil, err
		}
		return []byte(text), nil
	}
}

func (r *Reconciler) configMapKey(ctx context.Context, namespace, name, key string) (string, error) {
	cm, err := r.KubeClient.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if isNotFoundOrForbidden(err) {
			return "", engine.Errorf(engine.ReasonInvalidAppConfig, "cannot read ConfigMap %s/%s: %v", namespace, name, err)
		}
		return "", &engine.Error{Reason: engine.ReasonInvalidAppConfig, Message: fmt.Sprintf("reading ConfigMap %s/%s: %v", namespace, name, err), Transient: true, Err: err}
	}
	text, ok := cm.Data[key]
	if !ok {
		return "", engine.Errorf(engine.ReasonInvalidAppConfig, "ConfigMap %s/%s has no key %q", namespace, name, key)
	}
	return text, nil
}

// succeed ends the run with its results. It records no event: a successful
// op is in the CustomRun's status, and an event per op (milliseconds each) was
// an API write and etcd object per CustomRun, a fifth of the controller's CPU
// (README, "Benchmarks"). Failures and gate decisions, what a person looks
// for, have their events.
func (r *Reconciler) succeed(run *v1beta1.CustomRun, p *params, out *engine.Outcome) kreconciler.Event {
	r.attempts.Delete(run.UID)
	run.Status.Results = buildResults(p, out)
	run.Status.CompletionTime = &metav1.Time{Time: r.Clock.Now()}
	msg := fmt.Sprintf("op %s on %s succeeded", p.op, p.id)
	if out.Replayed {
		msg += " (recorded by an earlier attempt; nothing applied twice)"
	}
	run.Status.MarkCustomRunSucceeded(ReasonSucceeded, "%s", msg)
	return nil
}

// fail ends the run with reason and message. The results a pipeline may
// reference are still written (empty), so the PipelineRun reports our
// reason instead of a missing result.
func (r *Reconciler) fail(run *v1beta1.CustomRun, p *params, err error) kreconciler.Event {
	e := engine.AsError(err, engine.ReasonInvalidParams)
	if p == nil {
		p = lenientParams(run)
	}
	if p.op != "" && r.retryLeft(run) && e.Reason != engine.ReasonInvalidParams && e.Reason != ReasonCancelled {
		r.retry(run, e.Reason, e.Message)
		return controller.NewRequeueImmediately()
	}
	r.attempts.Delete(run.UID)
	run.Status.Results = buildResults(p, nil)
	run.Status.CompletionTime = &metav1.Time{Time: r.Clock.Now()}
	run.Status.MarkCustomRunFailed(e.Reason, "%s", e.Message)
	return kreconciler.NewEvent(corev1.EventTypeWarning, e.Reason, "%s", e.Message)
}

func (r *Reconciler) timedOut(run *v1beta1.CustomRun) kreconciler.Event {
	msg := fmt.Sprintf("the CustomRun did not finish within its timeout of %s", run.GetTimeout())
	if r.retryLeft(run) {
		r.retry(run, ReasonTimedOut, msg)
		return controller.NewRequeueImmediately()
	}
	p := lenientParams(run)
	r.attempts.Delete(run.UID)
	run.Status.Results = buildResults(p, nil)
	run.Status.CompletionTime = &metav1.Time{Time: r.Clock.Now()}
	run.Status.MarkCustomRunFailed(ReasonTimedOut, "%s", msg)
	return kreconciler.NewEvent(corev1.EventTypeWarning, ReasonTimedOut, "%s", msg)
}

func (r *Reconciler) retryLeft(run *v1beta1.CustomRun) bool {
	return run.Spec.Retries > len(run.Status.RetriesStatus)
}

// retry records the failed attempt in retriesStatus and starts a new one,
// as docs/customruns.md asks of custom task controllers.
func (r *Reconciler) retry(run *v1beta1.CustomRun, reason, msg string) {
	attempt := run.Status.DeepCopy()
	attempt.RetriesStatus = nil
	attempt.CompletionTime = &metav1.Time{Time: r.Clock.Now()}
	run.GetConditionSet().Manage(attempt).SetCondition(apis.Condition{
		Type: apis.ConditionSucceeded, Status: corev1.ConditionFalse, Reason: reason, Message: msg,
	})
	run.Status.RetriesStatus = append(run.Status.RetriesStatus, *attempt)
	run.Status.StartTime = nil
	run.Status.Results = nil
	r.attempts.Delete(run.UID)
	run.Status.MarkCustomRunRunning(ReasonRetrying, "attempt %d failed (%s): retrying", len(run.Status.RetriesStatus), reason)
}

// transient keeps the run going and asks to be called again after a backoff;
// the timeout check ends it if the fault lasts.
func (r *Reconciler) transient(ctx context.Context, run *v1beta1.CustomRun, p *params, e *engine.Error) kreconciler.Event {
	n := 0
	if v, ok := r.attempts.Load(run.UID); ok {
		n = v.(int)
	}
	r.attempts.Store(run.UID, n+1)
	delay := backoff(n, r.MaxBackoff)
	if t := run.GetTimeout(); t > 0 {
		if left := t - r.Clock.Since(run.Status.StartTime.Time); left < delay {
			delay = left + 10*time.Millisecond
		}
	}
	logging.FromContext(ctx).Infow("transient failure, retrying", "op", p.op, "reason", e.Reason, "error", e.Message, "retryIn", delay)
	run.Status.MarkCustomRunRunning(ReasonRetrying, "%s: %s (attempt %d, retrying in %s)", e.Reason, e.Message, n+1, delay.Round(time.Millisecond))
	return controller.NewRequeueAfter(delay)
}

// backoff is the requeue delay after n earlier transient failures of a run:
// 100ms doubling up to max (10s when max is not set), without jitter. The
// count lives in Reconciler.attempts, not in a wait.Backoff kept between
// reconciles, so the n-th step is computed afresh. 100ms lets a blip (a Redis
// failover, a restarted webhook) clear on the first retry; 10s keeps a long
// outage from costing more than one reconcile per 10s per run, while the
// run's timeout still ends it.
func backoff(n int, max time.Duration) time.Duration {
	if max <= 0 {
		max = 10 * time.Second
	}
	b := wait.Backoff{Duration: min(100*time.Millisecond, max), Factor: 2, Cap: max, Steps: n}
	// Each Step doubles Duration for the next one; reaching Cap ends the steps.
	for b.Steps > 0 {
		b.Step()
	}
	return b.Step()
}

func outcomeOf(err error) string {
	if err == nil {
		return "succeeded"
	}
	if e := engine.AsError(err, ""); e != nil && e.Transient {
		return "transient"
	}
	return "failed"
}

// buildResults writes `id`, one result per get entry and, for handle-event,
// `handled` and a gate's `choice`, `chosen-by`, `reason` and `decided-at`;
// on failure the same names with empty values, so a pipeline that reads
// them reports our reason, not a missing result.
func buildResults(p *params, out *engine.Outcome) []v1beta1.CustomRunResult {
	if p == nil {
		return nil
	}
	res := []v1beta1.CustomRunResult{{Name: ResultID, Value: p.id}}
	value := func(name string) string {
		if out == nil {
			return ""
		}
		v, _ := out.Result(name)
		return v
	}
	for _, g := range p.gets {
		res = append(res, v1beta1.CustomRunResult{Name: g.name, Value: value(g.name)})
	}
	if p.op == engine.OpHistory {
		res = append(res, v1beta1.CustomRunResult{Name: ResultHistory, Value: value(ResultHistory)})
	}
	if p.event != nil {
		res = append(res,
			v1beta1.CustomRunResult{Name: ResultHandled, Value: value(ResultHandled)},
			v1beta1.CustomRunResult{Name: ResultChoice, Value: value(ResultChoice)},
			v1beta1.CustomRunResult{Name: ResultChosenBy, Value: value(ResultChosenBy)},
			v1beta1.CustomRunResult{Name: ResultReason, Value: value(ResultReason)},
			v1beta1.CustomRunResult{Name: ResultDecidedAt, Value: value(ResultDecidedAt)})
	}
	return res
}
