package observability

import (
	"context"
	"net/http"
	"net/url"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Transport traces the HTTP calls made through rt under the op that makes
// them, with otelhttp: span "HTTP <method> <host>", the method, host, port
// and status.
//
// otelhttp records the whole URL (url.full). Ours are written by pipeline
// authors and administrators, and their path or query is often the secret
// itself (a Slack incoming webhook, a token parameter), so otelhttp is shown
// a URL cut to scheme://host and the real one is put back under it. No trace
// headers are sent: the endpoints are not ours.
func Transport(rt http.RoundTripper) http.RoundTripper {
	inner := restoreURL{next: rt}
	traced := otelhttp.NewTransport(inner, otelhttp.WithTracerProvider(currentProvider{}),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithFilter(func(r *http.Request) bool { return trace.SpanContextFromContext(r.Context()).IsValid() }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "HTTP " + r.Method + " " + r.URL.Host }))
	return cutURL{next: traced}
}

type realURLKey struct{}

// cutURL hands the next transport a copy of the request whose URL is only
// scheme://host, the real URL kept in its context.
type cutURL struct{ next http.RoundTripper }

func (c cutURL) RoundTrip(r *http.Request) (*http.Response, error) {
	cut := &url.URL{Scheme: r.URL.Scheme, Host: r.URL.Host}
	shown := r.WithContext(context.WithValue(r.Context(), realURLKey{}, r.URL))
	shown.URL = cut
	return c.next.RoundTrip(shown)
}

// restoreURL puts the real URL back before the request is sent.
type restoreURL struct{ next http.RoundTripper }

func (t restoreURL) RoundTrip(r *http.Request) (*http.Response, error) {
	if u, ok := r.Context().Value(realURLKey{}).(*url.URL); ok {
		real := *r
		real.URL = u
		r = &real
	}
	return t.next.RoundTrip(r)
}
