package reconciler

import (
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	ttesting "github.com/tektoncd/pipeline/pkg/reconciler/testing"
	"github.com/tektoncd/pipeline/test"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	testclock "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/configmap"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/observability"
)

// The controller's tracing, as cmd/controller installs it at start: before
// any test makes a store.
func init() { observability.Install() }

// recordSpans installs an in-memory span recorder as the global tracer
// provider (where sharedmain puts config-observability's) for one test.
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		tp.Shutdown(t.Context())
	})
	return rec
}

// TestReconcileIsTracedDownToRedisAndHTTP: one CustomRun's reconcile through
// the generated reconciler is a span whose child is the engine op, whose
// children are the op's Redis commands and its handler's HTTP call; the
// HTTP span shows the host, never the URL's path.
func TestReconcileIsTracedDownToRedisAndHTTP(t *testing.T) {
	ep := newEndpoint(t)
	src, _ := eventsSource(t, ep.srv.URL+"/services/T0/B0/secret-token")
	rec := recordSpans(t)
	run := parseRun(t, eventRun(t, "uid-traced", "note"))

	ctx, _ := ttesting.SetupFakeContext(t)
	clients, _ := test.SeedTestData(t, ctx, test.Data{CustomRuns: []*v1beta1.CustomRun{run}})
	impl := NewController(Options{Source: src, Clock: testclock.NewFakePassiveClock(now)})(ctx, configmap.NewStaticWatcher())
	if la, ok := impl.Reconciler.(kreconciler.LeaderAware); ok {
		if err := la.Promote(kreconciler.UniversalBucket(), func(kreconciler.Bucket, types.NamespacedName) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := impl.Reconciler.Reconcile(ctx, "ns/run"); err != nil {
		t.Fatal(err)
	}
	got, err := clients.Pipeline.TektonV1beta1().CustomRuns("ns").Get(ctx, "run", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		t.Fatalf("run condition %+v", c)
	}

	spans := rec.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	var names []string
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
		names = append(names, s.Name())
	}
	one := func(name string) sdktrace.ReadOnlySpan {
		t.Helper()
		if len(byName[name]) != 1 {
			t.Fatalf("%d spans %q, want 1; spans: %v", len(byName[name]), name, names)
		}
		return byName[name][0]
	}
	root := one(observability.SpanReconcile)
	if root.Parent().IsValid() {
		t.Fatalf("the reconcile span has a parent %v", root.Parent())
	}
	if !hasAttr(root, observability.AttrName, "run") || !hasAttr(root, observability.AttrNamespace, "ns") {
		t.Fatalf("reconcile span attributes %v", root.Attributes())
	}
	op := one(observability.SpanOpPrefix + "handle-event")
	if op.Parent().SpanID() != root.SpanContext().SpanID() || op.SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("the op span is not the reconcile's child: parent %v", op.Parent())
	}
	if !hasAttr(op, observability.AttrContextID, "ctx-1") {
		t.Fatalf("op span attributes %v", op.Attributes())
	}
	redisChildren, httpChildren := 0, 0
	for _, s := range spans {
		switch {
		case s.Parent().SpanID() != op.SpanContext().SpanID():
		case strings.HasPrefix(s.Name(), "redis "):
			redisChildren++
			if s.SpanKind() != trace.SpanKindClient || !hasAttr(s, "db.system.name", "redis") {
				t.Errorf("redis span %s: kind %v attributes %v", s.Name(), s.SpanKind(), s.Attributes())
			}
		case strings.HasPrefix(s.Name(), "HTTP POST "):
			httpChildren++
			for _, a := range s.Attributes() {
				if strings.Contains(a.Value.Emit(), "secret-token") || strings.Contains(a.Value.Emit(), "/services/") {
					t.Errorf("the HTTP span records the URL's path: %s=%s", a.Key, a.Value.Emit())
				}
			}
			if !hasAttr(s, "http.response.status_code", "200") {
				t.Errorf("HTTP span attributes %v", s.Attributes())
			}
		}
	}
	if redisChildren == 0 || httpChildren != 1 {
		t.Fatalf("op children: %d redis, %d HTTP (want >0 and 1); spans: %v", redisChildren, httpChildren, names)
	}
	if ep.hits.Load() != 1 {
		t.Fatalf("the endpoint got %d calls", ep.hits.Load())
	}
}

func hasAttr(s sdktrace.ReadOnlySpan, key, value string) bool {
	for _, a := range s.Attributes() {
		if string(a.Key) == key && a.Value.Emit() == value {
			return true
		}
	}
	return false
}
