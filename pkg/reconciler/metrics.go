package reconciler

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// Metrics are the controller's Prometheus metrics. A nil *Metrics records
// nothing, which keeps tests free of registries.
type Metrics struct {
	ops         *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	redisErrors prometheus.Counter
	budgets     *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cicdstatemgr_ops_total", Help: "Operations run, by op and outcome (succeeded, failed, transient).",
		}, []string{"op", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cicdstatemgr_op_duration_seconds", Help: "Time to run one operation against Redis and endpoints.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op"}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cicdstatemgr_redis_errors_total", Help: "Operations that failed because Redis was unreachable.",
		}),
		budgets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cicdstatemgr_budget_exceeded_total", Help: "Operations and requests stopped by a budget, by budget: steps, output, depth, deadline, opOutput (template renders); appConfigBytes, valueBytes, contextBytes, documentDepth (sizes); callsPerHost, eventsInFlight (handler calls); http_* (the HTTP server's limits).",
		}, []string{"budget"}),
	}
	reg.MustRegister(m.ops, m.duration, m.redisErrors, m.budgets)
	return m
}

func (m *Metrics) observe(op, outcome string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.ops.WithLabelValues(op, outcome).Inc()
	m.duration.WithLabelValues(op).Observe(d.Seconds())
	if errors.Is(err, store.ErrUnavailable) {
		m.redisErrors.Inc()
	}
	m.countBudget(err)
}

// countBudget counts err in cicdstatemgr_budget_exceeded_total when a budget
// stopped the op.
func (m *Metrics) countBudget(err error) {
	if budget := budgetOf(err); budget != "" {
		m.BudgetExceeded(budget)
	}
}

// budgetOf names the budget that stopped an op, empty when none did.
func budgetOf(err error) string {
	var be *tmpl.BudgetError
	if errors.As(err, &be) {
		return be.Budget
	}
	if e := engine.AsError(err, ""); e != nil {
		return e.Budget
	}
	return ""
}

// BudgetExceeded counts one request, connection or operation stopped by the
// named budget in cicdstatemgr_budget_exceeded_total. Parts of the controller
// outside the reconciler (the HTTP server: http_body, http_inflight,
// http_connections_per_client) report their limits through it. A nil
// *Metrics records nothing.
func (m *Metrics) BudgetExceeded(budget string) {
	if m == nil {
		return
	}
	m.budgets.WithLabelValues(budget).Inc()
}
