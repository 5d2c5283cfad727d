package reconciler

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
