package reconciler

import (
	"context"
	"sync"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
)

// DefaultInlineWait is how long a reconcile worker waits for an op before it
// leaves the op running on its own and moves on (Reconciler.InlineWait). Ops
// against Redis take milliseconds and finish within it, in the same
// reconcile, as before; an op held up by a slow endpoint (a handler's HTTP
// call may take a minute with its retries) holds the worker no longer than
// this, so eight slow endpoints cannot stop every other CustomRun.
const DefaultInlineWait = 500 * time.Millisecond

// keepFinished is how long the outcome of an op that finished away from its
// reconcile is kept for the reconcile that picks it up: a CustomRun deleted
// meanwhile is never reconciled again, so its outcome is dropped after this.
const keepFinished = 10 * time.Minute

// ReasonOpInProgress: the op is running away from the reconcile worker,
// waiting on an endpoint; the CustomRun is reconciled again when it ends.
const ReasonOpInProgress = "OpInProgress"

// op is one attempt at a CustomRun's op, running in its own goroutine.
type op struct {
	attempt int // len(retriesStatus) when it started: a retry starts a new op
	cancel  context.CancelFunc
	done    chan struct{} // closed when out and err are set
	out     *engine.Outcome
	err     error
	ended   time.Time
}

// runningOps are the ops started by this process, by CustomRun UID.
type runningOps struct {
	mu    sync.Mutex
	ops   map[types.UID]*op
	swept time.Time
}

// startOp runs eng.Do for the run's current attempt in its own goroutine.
// When it ends the CustomRun is enqueued (r.enqueue), so that the next
// reconcile takes its outcome (awaitOp). The op's context ends at the run's
// timeout (r.opTimeout), not with the reconcile; every effect it has is
// journaled, so an op lost with the process is replayed exactly once by the
// next attempt, as before.
func (r *Reconciler) startOp(ctx context.Context, run *v1beta1.CustomRun, eng *engine.Engine, req engine.Request) *op {
	// The op outlives this reconcile: keep the context's values (logger)
	// but not its cancellation.
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opTimeout(run))
	opCtx = engine.WithAskingRun(opCtx, askingRun(run))
	o := &op{attempt: len(run.Status.RetriesStatus), cancel: cancel, done: make(chan struct{})}
	r.ops.add(run.UID, o)
	key := types.NamespacedName{Namespace: run.Namespace, Name: run.Name}
	go func() {
		defer cancel()
		start := time.Now()
		out, err := eng.Do(opCtx, req)
		r.Metrics.observe(string(req.Op), outcomeOf(err), time.Since(start), err)
		o.out, o.err, o.ended = out, err, time.Now()
		close(o.done)
		if r.enqueue != nil {
			r.enqueue(key)
		}
	}()
	return o
}

// awaitOp waits for the op up to the inline wait. It returns the outcome
// when the op has ended, or pending: the op goes on alone and a later
// reconcile (enqueued when it ends) awaits it again.
func (r *Reconciler) awaitOp(run *v1beta1.CustomRun, o *op) (out *engine.Outcome, err error, pending bool) {
	wait := r.InlineWait
	if wait <= 0 {
		wait = DefaultInlineWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-o.done:
		r.ops.forget(run.UID, o)
		return o.out, o.err, false
	case <-t.C:
		return nil, nil, true
	}
}

// stopOp cancels and forgets the run's op, if any (the run ended, was
// cancelled or timed out).
func (r *Reconciler) stopOp(uid types.UID) {
	r.ops.mu.Lock()
	o := r.ops.ops[uid]
	delete(r.ops.ops, uid)
	r.ops.mu.Unlock()
	if o != nil {
		o.cancel()
	}
}

// find returns the op of the run's current attempt; an op of an earlier
// attempt is cancelled and forgotten.
func (s *runningOps) find(run *v1beta1.CustomRun) *op {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.ops[run.UID]
	if o != nil && o.attempt != len(run.Status.RetriesStatus) {
		o.cancel()
		delete(s.ops, run.UID)
		return nil
	}
	return o
}

func (s *runningOps) add(uid types.UID, o *op) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops == nil {
		s.ops = map[types.UID]*op{}
	}
	s.ops[uid] = o
	if now.Sub(s.swept) > time.Minute {
		s.sweep(now)
	}
}

// sweep drops outcomes no reconcile picked up within keepFinished (their
// CustomRun was deleted). Called with s.mu held.
func (s *runningOps) sweep(now time.Time) {
	s.swept = now
	for uid, o := range s.ops {
		select {
		case <-o.done:
			if now.Sub(o.ended) > keepFinished {
				delete(s.ops, uid)
			}
		default:
		}
	}
}

func (s *runningOps) forget(uid types.UID, o *op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops[uid] == o {
		delete(s.ops, uid)
	}
}
