// Package events runs the event handlers of a pipeline's event (notify,
// manual-choice, respond, trigger-pipeline, set-values) against a document.
package events

import (
	"context"
	"log/slog"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/render"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// Runner runs event handlers.
type Runner struct {
	Store    *store.Store
	Renderer *render.Renderer
	Log      *slog.Logger
}

// NewRunner returns a Runner.
func NewRunner(st *store.Store, r *render.Renderer, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.Default()
	}
	return &Runner{Store: st, Renderer: r, Log: log}
}

var _ engine.EventRunner = (*Runner)(nil)

// HandleEvent implements engine.EventRunner.
func (r *Runner) HandleEvent(ctx context.Context, in engine.EventInput) (string, error) {
	return "", engine.Errorf(engine.ReasonInvalidParams, "handle-event is not supported yet")
}
