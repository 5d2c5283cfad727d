package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
)

// otlpSpan is what the test keeps of a received span.
type otlpSpan struct {
	name, trace, id, parent string
	attrs                   map[string]string
}

// otlpReceiver is an OTLP/HTTP trace receiver on loopback (POST /v1/traces,
// protobuf), recording every span.
type otlpReceiver struct {
	url   string
	mu    sync.Mutex
	spans []otlpSpan
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rcv := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		rcv.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					sp := otlpSpan{name: s.Name, trace: hex.EncodeToString(s.TraceId), id: hex.EncodeToString(s.SpanId),
						parent: hex.EncodeToString(s.ParentSpanId), attrs: map[string]string{}}
					for _, a := range s.Attributes {
						v := a.Value.GetStringValue()
						if v == "" {
							v = strings.Trim(a.Value.String(), " ")
						}
						sp.attrs[a.Key] = v
					}
					rcv.spans = append(rcv.spans, sp)
				}
			}
		}
		rcv.mu.Unlock()
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	rcv.url = srv.URL + "/v1/traces"
	return rcv
}

func (r *otlpReceiver) all() []otlpSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]otlpSpan(nil), r.spans...)
}

// withTracing writes config-observability (OTLP/HTTP to url, every reconcile
// sampled) and restarts the controller, which reads it at start as knative's
// sharedmain does; afterwards the ConfigMap is deleted and the controller
// restarted without it.
func withTracing(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	cms := kube.CoreV1().ConfigMaps("cicdstatemgr")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "config-observability", Namespace: "cicdstatemgr"},
		Data: map[string]string{"tracing-protocol": "http/protobuf", "tracing-endpoint": url, "tracing-sampling-rate": "1"}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	restart := func() error {
		if err := stack("stop-controller"); err != nil {
			return err
		}
		return stack("start-controller")
	}
	t.Cleanup(func() {
		if err := cms.Delete(ctx, "config-observability", metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting config-observability: %v", err)
		}
		if err := restart(); err != nil {
			t.Errorf("restarting the controller without tracing: %v", err)
		}
	})
	if err := restart(); err != nil {
		t.Fatal(err)
	}
}

// TestTracesOfOneCustomRunReachAnOTLPReceiver: with config-observability's
// tracing-protocol http/protobuf pointing at a receiver on loopback, a
// handle-event CustomRun's reconcile arrives as a trace: the reconcile span,
// its engine op child, and the op's Redis and HTTP children; no span holds
// the Slack URL's path.
func TestTracesOfOneCustomRunReachAnOTLPReceiver(t *testing.T) {
	rcv := startOTLPReceiver(t)
	startFakeSlackAPI(t)
	withTracing(t, rcv.url)
	ns := namespace(t, "trace")
	init := runOne(t, ns, customRun("init", "trace", time.Minute, strParam("op", "init"), strParam("id", "ctx"),
		strParam("app-config", "cicd-contexts: {stage: {channel: c, pipelines: {p: {event-handlers: {ev: {notify: {message: hi}}}}}}}")), time.Minute)
	if !init.IsSuccessful() {
		t.Fatalf("init: %+v", init.Status.GetCondition(apis.ConditionSucceeded))
	}
	run := runOne(t, ns, customRun("traced", "trace", time.Minute, strParam("op", "handle-event"), strParam("id", "ctx"),
		strParam("event", "p=ev")), time.Minute)
	if !run.IsSuccessful() {
		t.Fatalf("handle-event: %+v", run.Status.GetCondition(apis.ConditionSucceeded))
	}

	// the batch exporter sends every 5s
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		why := traceOf(rcv.all(), ns, "traced")
		if why == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete trace of the handle-event CustomRun after 60s: %s\n%s", why, controllerLogTail())
		}
	}
	for _, s := range rcv.all() {
		for k, v := range s.attrs {
			if strings.Contains(v, "/slack") || strings.Contains(v, "chat.postMessage") {
				t.Errorf("span %s records the URL's path: %s=%s", s.name, k, v)
			}
		}
	}
}

// traceOf checks the spans for a reconcile of the CustomRun ns/name whose
// engine.handle-event child has Redis and HTTP children; it says what is
// missing ("" when all is there).
func traceOf(spans []otlpSpan, ns, name string) string {
	var buf bytes.Buffer
	for _, r := range spans {
		if r.name != "CicdState:Reconcile" || r.attrs["cicdstatemgr.customrun"] != name || r.attrs["cicdstatemgr.namespace"] != ns || r.parent != "" {
			continue
		}
		for _, op := range spans {
			if op.name != "engine.handle-event" || op.parent != r.id || op.trace != r.trace {
				continue
			}
			redis, httpCall := 0, 0
			for _, c := range spans {
				if c.parent != op.id {
					continue
				}
				if strings.HasPrefix(c.name, "redis ") && c.attrs["db.system.name"] == "redis" {
					redis++
				}
				if strings.HasPrefix(c.name, "HTTP POST 127.0.0.1:") {
					httpCall++
				}
			}
			if redis > 0 && httpCall == 1 {
				return ""
			}
			buf.WriteString("op span with " + strings.Repeat("r", redis) + strings.Repeat("h", httpCall) + " children; ")
		}
	}
	names := map[string]int{}
	for _, s := range spans {
		names[s.name]++
	}
	if buf.Len() == 0 {
		buf.WriteString("no reconcile span of the run with an engine.handle-event child; ")
	}
	for n, c := range names {
		buf.WriteString(n + "×" + strings.Repeat("I", min(c, 5)) + " ")
	}
	return buf.String()
}
