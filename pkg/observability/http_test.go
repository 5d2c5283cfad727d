package observability

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestTransportTracesHostOnly: the endpoint gets the whole URL and no trace
// headers; the span, a child of the caller's, records neither the path nor
// the query. Without a span in the context nothing is traced.
func TestTransportTracesHostOnly(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })

	var gotURL, gotTraceparent string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotURL, gotTraceparent = r.URL.String(), r.Header.Get("traceparent")
		w.WriteHeader(http.StatusTeapot)
	}))
	defer srv.Close()
	hc := &http.Client{Transport: Transport(http.DefaultTransport)}
	call := func(ctx context.Context) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/services/T0/secret-path?token=secret-query", nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	call(context.Background())
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans without a parent span", n)
	}
	ctx, parent := Start(context.Background(), "op")
	call(ctx)
	parent.End()
	if gotURL != "/services/T0/secret-path?token=secret-query" || gotTraceparent != "" {
		t.Fatalf("the endpoint got %q, traceparent %q", gotURL, gotTraceparent)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the op and its call", len(spans))
	}
	s := spans[0]
	host := strings.TrimPrefix(srv.URL, "http://")
	if s.Name() != "HTTP POST "+host || s.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("span %q parent %v", s.Name(), s.Parent())
	}
	status := false
	for _, a := range s.Attributes() {
		if v := a.Value.Emit(); strings.Contains(v, "secret") {
			t.Errorf("span attribute %s=%s", a.Key, v)
		}
		status = status || (a.Key == "http.response.status_code" && a.Value.AsInt64() == http.StatusTeapot)
	}
	if !status {
		t.Fatalf("no status in %v", s.Attributes())
	}
}
