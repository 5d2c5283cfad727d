package reconciler

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// TestBudgetExceededIsCounted: an op stopped by a render budget counts in
// cicdstatemgr_budget_exceeded_total under the budget's name; other
// failures do not.
func TestBudgetExceededIsCounted(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	_, err := tmpl.New(tmpl.Options{}).Render(`{{ "x"|ljust:200000000 }}`, document.NewMap())
	if err == nil {
		t.Fatal("the render bomb rendered")
	}
	m.observe("get", "failed", 0, engine.AsError(err, engine.ReasonTemplateError))
	if got := testutil.ToFloat64(m.budgets.WithLabelValues("output")); got != 1 {
		t.Fatalf("budget_exceeded_total{budget=output} = %v, want 1", got)
	}
	m.observe("get", "failed", 0, engine.Errorf(engine.ReasonTemplateError, "an ordinary template error"))
	if n := testutil.CollectAndCount(m.budgets); n != 1 {
		t.Fatalf("%d budget series, want only the output one", n)
	}
	// size budgets: a value over budgets.valueBytes, a context over
	// budgets.contextBytes (as the store reports it), an app config
	m.countBudget(engine.ValueTooLarge("set state.x", 11, 10))
	m.observe("set", "failed", 0, fmt.Errorf("writing: %w", store.ErrTooLarge))
	m.countBudget(engine.AppConfigTooLarge("app config", 11, 10))
	// a handler call that found its host at budgets.callsPerHost
	// (as pkg/handlers reports it)
	m.observe("handle-event", "transient", 0, &engine.Error{Reason: engine.ReasonEventHandlerFailed, Transient: true,
		Budget: engine.BudgetCallsPerHost, Err: &httpclient.Error{Method: "POST", Host: "h", Err: fmt.Errorf("%w (16)", httpclient.ErrHostBusy)}})
	for _, b := range []string{engine.BudgetValueBytes, engine.BudgetContextBytes, engine.BudgetAppConfigBytes, "callsPerHost"} {
		if got := testutil.ToFloat64(m.budgets.WithLabelValues(b)); got != 1 {
			t.Errorf("budget_exceeded_total{budget=%s} = %v, want 1", b, got)
		}
	}
}
