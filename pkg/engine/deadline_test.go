package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// TestRendersStopWithTheOp: a template evaluated for an op stops when the
// op's context ends (the reconciler gives every op the CustomRun's
// remaining timeout), with a TemplateError naming the deadline budget.
func TestRendersStopWithTheOp(t *testing.T) {
	e, cfg := newEngine(t)
	doc := document.NewMap()
	state := document.NewMap()
	list := make([]any, 200)
	for i := range list {
		list[i] = i
	}
	state.Set("list", list)
	state.Set("t", "{% for i in state.list %}{% for j in state.list %}.{% endfor %}{% endfor %}")
	doc.Set("state", state)

	// Positive control: with a live context it renders.
	if out, err := e.GetValue(context.Background(), doc, cfg, "state.t", nil); err != nil || len(out) != 200*200 {
		t.Fatalf("live context: %d bytes, %v", len(out), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.GetValue(ctx, doc, cfg, "state.t", nil)
	var be *tmpl.BudgetError
	if engine.ReasonOf(err, "") != engine.ReasonTemplateError || !errors.As(err, &be) || be.Budget != "deadline" {
		t.Fatalf("ended context: %v", err)
	}
}
