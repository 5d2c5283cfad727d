package httpserver

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// RetryAfter is the Retry-After of a request refused by LimitInFlight: the
// requests in flight end within the server's timeouts, so a second later is a
// fair guess; Slack retries on its own.
const RetryAfter = time.Second

// LimitInFlight lets at most max requests run h at once. A request over the
// limit is answered 503 with Retry-After at once, without reading its body,
// its connection is closed, and it is reported to exceeded as
// BudgetInFlight. max <= 0 returns h unchanged (no limit).
//
// Waiting for a slot instead would let a flood of slow requests queue up
// goroutines and memory without bound; refusing costs almost nothing.
func LimitInFlight(h http.Handler, max int, exceeded func(string)) http.Handler {
	if max <= 0 {
		return h
	}
	slots := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			h.ServeHTTP(w, r)
		default:
			report(exceeded, BudgetInFlight)
			w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
			// Close: the server then neither reads nor drains the body.
			w.Header().Set("Connection", "close")
			http.Error(w, "too many requests in flight, try again", http.StatusServiceUnavailable)
		}
	})
}

// WithDeadline gives each request's context a deadline d from its start: the
// server stops writing the reply at its write timeout, so work done for the
// request after that (a Redis call) is wasted and holds its in-flight slot.
// d <= 0 returns h unchanged.
func WithDeadline(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
