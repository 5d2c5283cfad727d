// Package httpserver runs the controller's HTTP listeners with limits that
// make an unauthenticated request cheap to refuse (docs/security.md, "HTTP
// server"):
//
//   - every read and write is bounded in time (Limits: header, request, write
//     and idle timeouts), so a client that sends or reads slowly holds a
//     connection for seconds, not for ever;
//   - LimitPerClient caps the connections one client address keeps open: the
//     excess is closed as it is accepted, before anything is read from it;
//   - LimitInFlight caps the requests being handled at once: the excess is
//     answered 503 with Retry-After at once, before its body is read;
//   - WithDeadline gives each request's context the write timeout, so work a
//     handler starts for a request (a Redis call) ends when nobody can receive
//     its answer any more.
//
// Each limit hit is reported to a func(budget string) under the names
// BudgetInFlight and BudgetConnsPerClient (BudgetBody is the body cap of the
// endpoints, which they enforce themselves), which the controller counts in
// cicdstatemgr_budget_exceeded_total.
package httpserver

// Names of the limits, as reported to the exceeded callbacks and counted in
// cicdstatemgr_budget_exceeded_total{budget}.
const (
	// BudgetBody: a request body over the endpoint's cap (413).
	BudgetBody = "http_body"
	// BudgetInFlight: a request over the limit of requests in flight (503).
	BudgetInFlight = "http_inflight"
	// BudgetConnsPerClient: a connection over the limit of open connections
	// of one client address (closed at accept).
	BudgetConnsPerClient = "http_connections_per_client"
)

// report calls exceeded when it is set.
func report(exceeded func(string), budget string) {
	if exceeded != nil {
		exceeded(budget)
	}
}
