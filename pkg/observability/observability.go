// Package observability holds the controller's tracing: the spans of a
// reconcile, of the engine's op under it, and of the Redis commands and HTTP
// calls the op makes.
//
// Which exporter receives the spans, and how many are sampled, is
// config-observability's, read by knative's sharedmain at start-up as for
// Tekton's controllers (tracing-protocol, tracing-endpoint,
// tracing-sampling-rate; docs/observability.md). This package only starts
// spans on the global tracer provider sharedmain installs; with none (tests),
// spans cost next to nothing and go nowhere. Install hooks it into the engine,
// the store and the HTTP client, which do not import it: the CLI links none
// of it.
package observability

import (
	"context"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// TracerName names the controller's tracer (the instrumentation scope).
const TracerName = "github.com/cicdstatemgr/cicdstatemgr"

// Names of the spans and of their attributes.
const (
	SpanReconcile = "CicdState:Reconcile"
	// SpanOpPrefix starts the span of an engine op: engine.set, engine.init...
	SpanOpPrefix = "engine."

	AttrNamespace = "cicdstatemgr.namespace"
	AttrName      = "cicdstatemgr.customrun"
	AttrOp        = "cicdstatemgr.op"
	AttrContextID = "cicdstatemgr.context.id"
)

// Start starts a span on the current global tracer provider.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return otel.GetTracerProvider().Tracer(TracerName).Start(ctx, name, trace.WithAttributes(attrs...))
}

// StartOp starts the span of an engine op on the context namespace/id.
func StartOp(ctx context.Context, op, namespace, id string) (context.Context, trace.Span) {
	return Start(ctx, SpanOpPrefix+op, attribute.String(AttrOp, op),
		attribute.String(AttrNamespace, namespace), attribute.String(AttrContextID, id))
}

// StartReconcile starts the span of one reconcile of the CustomRun
// namespace/name.
func StartReconcile(ctx context.Context, namespace, name string) (context.Context, trace.Span) {
	return Start(ctx, SpanReconcile, attribute.String(AttrNamespace, namespace), attribute.String(AttrName, name))
}

// inSpan says whether ctx carries a span, the condition of StartChild.
func inSpan(ctx context.Context) bool { return trace.SpanContextFromContext(ctx).IsValid() }

// StartChild starts a span only under a span already in ctx: Redis commands
// and HTTP calls are traced as parts of an op, never alone (the gate poller's
// commands would otherwise fill the traces).
func StartChild(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span, bool) {
	if !inSpan(ctx) {
		return ctx, nil, false
	}
	ctx, span := otel.GetTracerProvider().Tracer(TracerName).Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	return ctx, span, true
}

// End ends span, recording err (when not nil) as its status.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// currentProvider is a TracerProvider whose tracers start each span on the
// global provider of the moment. Instrumentation that takes its tracer once
// (otelhttp, built with the package-level HTTP client before sharedmain
// installs config-observability's provider) thus follows the global one, as
// Start does, tests' recorders included.
type currentProvider struct{ embedded.TracerProvider }

func (currentProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return currentTracer{name: name, opts: opts}
}

type currentTracer struct {
	embedded.Tracer
	name string
	opts []trace.TracerOption
}

func (t currentTracer) Start(ctx context.Context, span string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return otel.GetTracerProvider().Tracer(t.name, t.opts...).Start(ctx, span, opts...)
}

// Install traces the controller's ops from now on: each engine op is a span
// (under the reconcile's), and the Redis commands of every store made
// afterwards and the HTTP calls of pkg/httpclient are spans under the op. The
// controller calls it first thing; the CLI never does, and so links neither
// OpenTelemetry nor this package (README, Benchmarks).
func Install() {
	engine.TraceOp = func(ctx context.Context, op engine.Op, namespace, id string) (context.Context, func(error)) {
		ctx, span := StartOp(ctx, string(op), namespace, id)
		return ctx, func(err error) { End(span, err) }
	}
	store.Hooks = []redis.Hook{RedisHook()}
	httpclient.WrapTransport = Transport
}
