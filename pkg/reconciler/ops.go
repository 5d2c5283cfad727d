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

	// mu orders the op's end against a reconcile leaving it: an op that
	// ends after some reconcile left it (detached) enqueues its run; one
	// that ends while a reconcile waits for it is taken by that reconcile,
	// costing no second reconcile.
	mu       sync.Mutex
	finished bool
	detached bool
}

// finish records the op's end; true when a reconcile left the op and the
// run must be enqueued.
func (o *op) finish() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.finished = true
	return o.detached
}

// detach marks the op left by its reconcile; false when it has already
// finished (take its outcome instead).
func (o *op) detach() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.detached = !o.finished
	return o.detached
}

// runningOps are the ops started by this process, by CustomRun UID.
type runningOps struct {
	mu    sync.Mutex
	ops   map[types.UID]*op
	swept time.Time
}

// startOp runs eng.Do for the run's current attempt in its own goroutine.
// When it ends after its reconcile left it, the CustomRun is enqueued
// (r.enqueue), so that the next reconcile takes its outcome (awaitOp). The
// op's context ends at the run's timeout (r.opTimeout), not with the
// reconcile; every effect it has is journaled, so an op lost with the
// process is replayed exactly once by the next attempt, as before.
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
		if o.finish() && r.enqueue != nil {
			r.enqueue(key)
		}
	}()
	return o
}

// awaitOp takes the outcome of the op when it has ended. An op started by
// this reconcile (fresh) is waited for up to the inline wait; one started
// earlier is not waited for, since its end enqueues the run anyway. pending:
// the op goes on alone.
func (r *Reconciler) awaitOp(run *v1beta1.CustomRun, o *op, fresh bool) (out *engine.Outcome, err error, pending bool) {
	if !fresh {
		select {
		case <-o.done:
			return r.takeOp(run, o)
		default:
			return r.leaveOp(run, o)
		}
	}
	wait := r.InlineWait
	if wait <= 0 {
		wait = DefaultInlineWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-o.done:
		return r.takeOp(run, o)
	case <-t.C:
		return r.leaveOp(run, o)
	}
}

// leaveOp leaves a running op to end alone (pending), or takes its outcome
// when it ended meanwhile.
func (r *Reconciler) leaveOp(run *v1beta1.CustomRun, o *op) (*engine.Outcome, error, bool) {
	if !o.detach() {
		<-o.done // finished, about to close done
		return r.takeOp(run, o)
	}
	return nil, nil, true
}

// takeOp returns the outcome of an ended op and forgets the op.
func (r *Reconciler) takeOp(run *v1beta1.CustomRun, o *op) (*engine.Outcome, error, bool) {
	r.ops.forget(run.UID, o)
	return o.out, o.err, false
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
