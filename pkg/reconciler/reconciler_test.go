package reconciler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakekube "k8s.io/client-go/kubernetes/fake"
	testclock "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/controller"
	"sigs.k8s.io/yaml"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

var redisSrv *redistest.Server

func TestMain(m *testing.M) {
	redistest.Main(m, &redisSrv)
}

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// staticSource serves one engine, or an error.
type staticSource struct {
	eng *engine.Engine
	cfg *config.Config
	err error
}

func (s staticSource) Current() (*engine.Engine, *config.Config, error) { return s.eng, s.cfg, s.err }

func newSource(t *testing.T, addr string) (staticSource, *store.Store) {
	t.Helper()
	st, err := store.New(store.Options{Addr: addr, Username: redisSrv.Username, Password: redisSrv.Password,
		KeyPrefix: "rt-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return staticSource{eng: &engine.Engine{Store: st, Templates: tmpl.New(tmpl.Options{})}, cfg: cfg}, st
}

const appConfig = `cicd-contexts:
  stage:
    channel: stage
    pipelines:
      build:
        generators:
          g:
            one:
              if: "yes"
              set: [{key: state.generated, value: "{{ state.k }}!"}]
`

func appConfigMap() *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "apps", Namespace: "ns"}, Data: map[string]string{"app.yaml": appConfig}}
}

func parseRun(t *testing.T, y string) *v1beta1.CustomRun {
	t.Helper()
	run := &v1beta1.CustomRun{}
	if err := yaml.Unmarshal([]byte(y), run); err != nil {
		t.Fatalf("bad CustomRun YAML: %v\n%s", err, y)
	}
	return run
}

const header = `
metadata: {name: run, namespace: ns, uid: %s}
spec:
  customRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
`

// seedContext creates the context "ctx-1" with state.k = v.
func seedContext(t *testing.T, src staticSource) {
	t.Helper()
	_, err := src.eng.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpInit, ID: "ctx-1", Config: src.cfg,
		AppConfig: []byte(appConfig), Sets: []document.Assignment{{Path: "state.k", Value: "v"}}})
	if err != nil {
		t.Fatal(err)
	}
}

type wantStatus struct {
	status  corev1.ConditionStatus
	reason  string
	message string // substring
	results map[string]string
	retries int
	requeue bool
}

func TestReconcile(t *testing.T) {
	cases := []struct {
		name   string
		run    string // appended to header
		status string // optional status YAML (for started runs)
		down   bool   // Redis unreachable
		want   wantStatus
		doc    map[string]string // path -> expected JSON after reconcile
	}{{
		name: "init inline",
		run: `  params:
  - {name: op, value: init}
  - {name: id, value: ctx-2}
  - {name: app-config, value: "cicd-contexts: {stage: {channel: s}}"}
  - {name: set, value: [state.a=1, "state.empty="]}
  - {name: set-yaml, value: ["state.y={n: 1, l: [a]}"]}`,
		want: wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{"id": "ctx-2"}},
		doc:  map[string]string{"state": `{"cicdContextDataId": "ctx-2", "cicdContextName": "stage", "a": "1", "empty": "", "y": {"n": 1, "l": ["a"]}}`},
	}, {
		name: "init from a ConfigMap",
		run: `  params:
  - {name: op, value: init}
  - {name: id, value: ctx-3}
  - {name: app-config-ref, value: configmap/apps/app.yaml}`,
		want: wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{"id": "ctx-3"}},
		doc:  map[string]string{"channel": `"stage"`},
	}, {
		name: "set then get",
		run: `  params:
  - {name: op, value: get}
  - {name: id, value: ctx-1}
  - {name: set, value: ["state.l[]=a,b", "state.t={{ x.y }}|{{ state.k }}"]}
  - {name: tmpl-ctx-var, value: [x.y=state.k]}
  - {name: get, value: [k=state.k, l=state.l, "csv:csv=state.l", t=state.t, missing=state.nope, "whole=state.l[*]"]}`,
		want: wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{
			"id": "ctx-1", "k": "v", "l": `["a", "b"]`, "csv": "a,b", "t": "v|v", "missing": "", "whole": `["a", "b"]`}},
	}, {
		name: "load",
		run: `  params:
  - {name: op, value: load}
  - {name: id, value: ctx-1}`,
		want: wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded, results: map[string]string{"id": "ctx-1"}},
	}, {
		name: "generate",
		run: `  params:
  - {name: op, value: generate}
  - {name: id, value: ctx-1}
  - {name: generator, value: pipelines.build.generators.g}`,
		want: wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded},
		doc:  map[string]string{"state.generated": `"v!"`},
	}, {
		name: "missing op",
		run:  `  params: [{name: id, value: ctx-1}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonInvalidParams, message: `param "op" is required`},
	}, {
		name: "unknown op",
		run:  `  params: [{name: op, value: delete}, {name: id, value: ctx-1}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonInvalidParams, message: `unknown op "delete"`, results: map[string]string{"id": "ctx-1"}},
	}, {
		name: "missing id",
		run:  `  params: [{name: op, value: get}, {name: get, value: [a=b]}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonInvalidParams, message: `param "id" is required`},
	}, {
		name: "unknown param",
		run:  `  params: [{name: op, value: load}, {name: id, value: x}, {name: colour, value: red}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonInvalidParams, message: `unknown param "colour"`},
	}, {
		name: "malformed set entry",
		run:  `  params: [{name: op, value: set}, {name: id, value: ctx-1}, {name: set, value: [novalue]}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonInvalidParams, message: "path=value"},
		doc:  map[string]string{"state": `{"cicdContextDataId": "ctx-1", "cicdContextName": "stage", "k": "v"}`},
	}, {
		name: "malformed set-yaml entry",
		run:  `  params: [{name: op, value: set}, {name: id, value: ctx-1}, {name: set-yaml, value: ["a=[1, 2"]}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonInvalidParams, message: "malformed YAML"},
	}, {
		name: "marker on a string writes nothing",
		run:  `  params: [{name: op, value: set}, {name: id, value: ctx-1}, {name: set, value: [state.first=1, "state.k[]=x"]}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonInvalidParams, message: "not a list"},
		doc:  map[string]string{"state": `{"cicdContextDataId": "ctx-1", "cicdContextName": "stage", "k": "v"}`},
	}, {
		name: "unreadable app config",
		run:  `  params: [{name: op, value: init}, {name: id, value: x}, {name: app-config-ref, value: configmap/missing/app.yaml}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonInvalidAppConfig, message: "ConfigMap ns/missing"},
	}, {
		name: "bad app-config-ref",
		run:  `  params: [{name: op, value: init}, {name: id, value: x}, {name: app-config-ref, value: apps/app.yaml}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonInvalidParams, message: "configmap/<name>/<key>"},
	}, {
		name: "unknown context",
		run:  `  params: [{name: op, value: get}, {name: id, value: nope}, {name: get, value: [a=state]}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonContextNotFound, message: "nope", results: map[string]string{"id": "nope", "a": ""}},
	}, {
		name: "template error",
		run:  `  params: [{name: op, value: get}, {name: id, value: ctx-1}, {name: get, value: [a=state.k]}, {name: set, value: ["state.k={{ missing.attr }}"]}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: engine.ReasonTemplateError, message: "undefined"},
		doc:  map[string]string{"state.k": `"v"`},
	}, {
		name: "cancelled",
		run: `  status: RunCancelled
  statusMessage: PipelineRun cancelled
  params: [{name: op, value: set}, {name: id, value: ctx-1}, {name: set, value: [state.k=changed]}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: ReasonCancelled, message: "PipelineRun cancelled"},
		doc:  map[string]string{"state.k": `"v"`},
	}, {
		name: "timed out",
		run: `  timeout: 1m
  params: [{name: op, value: set}, {name: id, value: ctx-1}, {name: set, value: [state.k=changed]}]`,
		status: `startTime: "2026-11-24T11:58:00Z"
conditions: [{type: Succeeded, status: Unknown, reason: Running}]`,
		want: wantStatus{status: corev1.ConditionFalse, reason: ReasonTimedOut, message: "timeout of 1m0s"},
		doc:  map[string]string{"state.k": `"v"`},
	}, {
		name: "timed out with a retry left",
		run: `  timeout: 1m
  retries: 1
  params: [{name: op, value: load}, {name: id, value: ctx-1}]`,
		status: `startTime: "2026-11-24T11:58:00Z"
conditions: [{type: Succeeded, status: Unknown, reason: Running}]`,
		want: wantStatus{status: corev1.ConditionUnknown, reason: ReasonRetrying, retries: 1, requeue: true},
	}, {
		name: "already done",
		run:  `  params: [{name: op, value: set}, {name: id, value: ctx-1}, {name: set, value: [state.k=changed]}]`,
		status: `startTime: "2026-11-24T11:58:00Z"
completionTime: "2026-11-24T11:59:00Z"
conditions: [{type: Succeeded, status: "True", reason: Succeeded}]`,
		want: wantStatus{status: corev1.ConditionTrue, reason: ReasonSucceeded},
		doc:  map[string]string{"state.k": `"v"`},
	}, {
		name: "customRef with a name",
		run: `  params: [{name: op, value: load}, {name: id, value: ctx-1}]
  customRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState, name: mine}`,
		want: wantStatus{status: corev1.ConditionFalse, reason: ReasonUnexpectedRef},
	}, {
		name: "Redis down: keep running and requeue",
		run:  `  params: [{name: op, value: set}, {name: id, value: ctx-1}, {name: set, value: [state.k=changed]}]`,
		down: true,
		want: wantStatus{status: corev1.ConditionUnknown, reason: ReasonRetrying, message: "StoreUnavailable", requeue: true},
	}}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, _ := newSource(t, redisSrv.Addr)
			seedContext(t, src)
			if c.down {
				src, _ = newSource(t, "127.0.0.1:1")
			}
			run := parseRun(t, fmt.Sprintf(header, fmt.Sprintf("uid-%d", i))+c.run)
			if c.status != "" {
				if err := yaml.Unmarshal([]byte(c.status), &run.Status); err != nil {
					t.Fatal(err)
				}
			}
			r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset(appConfigMap())}
			ev := r.ReconcileKind(context.Background(), run)
			checkStatus(t, run, c.want, ev)
			good, _ := newSource(t, redisSrv.Addr)
			for p, want := range c.doc {
				id := "ctx-1"
				if prm := run.Spec.GetParam(ParamID); prm != nil {
					id = prm.Value.StringVal
				}
				doc, err := good.eng.Store.Get(context.Background(), store.Ref(run.Namespace, id))
				if err != nil {
					t.Fatalf("reading %s: %v", id, err)
				}
				v, _, _ := document.Lookup(doc, p)
				if got := document.MustJSON(v, document.PythonJSON); got != want {
					t.Errorf("doc %s = %s, want %s", p, got, want)
				}
			}
		})
	}
}

func checkStatus(t *testing.T, run *v1beta1.CustomRun, w wantStatus, ev error) {
	t.Helper()
	cond := run.Status.GetCondition(apis.ConditionSucceeded)
	if cond == nil {
		t.Fatalf("no Succeeded condition; status %+v", run.Status)
	}
	if cond.Status != w.status || cond.Reason != w.reason || !strings.Contains(cond.Message, w.message) {
		t.Errorf("condition %s/%s %q, want %s/%s containing %q", cond.Status, cond.Reason, cond.Message, w.status, w.reason, w.message)
	}
	if w.status != corev1.ConditionUnknown && run.Status.CompletionTime == nil {
		t.Error("a finished run needs a completion time")
	}
	if run.Status.StartTime == nil && w.status != corev1.ConditionUnknown {
		t.Error("no start time")
	}
	if len(run.Status.RetriesStatus) != w.retries {
		t.Errorf("retriesStatus has %d entries, want %d", len(run.Status.RetriesStatus), w.retries)
	}
	if requeue, _ := controller.IsRequeueKey(ev); requeue != w.requeue {
		t.Errorf("requeue = %v (event %v), want %v", requeue, ev, w.requeue)
	}
	got := map[string]string{}
	for _, r := range run.Status.Results {
		got[r.Name] = r.Value
	}
	for name, want := range w.results {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("result %s = %q (present %v), want %q", name, v, ok, want)
		}
	}
}

func TestNotOursIsIgnored(t *testing.T) {
	src, _ := newSource(t, redisSrv.Addr)
	run := parseRun(t, `metadata: {name: r, namespace: ns}
spec:
  customRef: {apiVersion: example.dev/v1, kind: Wait}
  params: [{name: op, value: init}]`)
	r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset()}
	if ev := r.ReconcileKind(context.Background(), run); ev != nil || run.Status.GetCondition(apis.ConditionSucceeded) != nil {
		t.Fatalf("touched a foreign CustomRun: %v %+v", ev, run.Status)
	}
}

// TestRepeatedReconcileChangesNothing: a reconcile of the same CustomRun
// (same UID) after success, as after a lost status update or a controller
// restart, applies nothing twice and returns the same results.
func TestRepeatedReconcileChangesNothing(t *testing.T) {
	src, st := newSource(t, redisSrv.Addr)
	seedContext(t, src)
	y := fmt.Sprintf(header, "uid-repeat") + `  params: [{name: op, value: get}, {name: id, value: ctx-1}, {name: set, value: ["state.l[]=x"]}, {name: get, value: [l=state.l]}]`
	r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset()}
	first := parseRun(t, y)
	r.ReconcileKind(context.Background(), first)
	raw1, err := st.GetRaw(context.Background(), "ns/ctx-1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		again := parseRun(t, y) // a fresh copy, as a stale informer would hand over
		r.ReconcileKind(context.Background(), again)
		if !again.IsSuccessful() || again.Status.Results[1].Value != `["x"]` {
			t.Fatalf("repeat %d: %+v", i, again.Status)
		}
		if !strings.Contains(again.Status.GetCondition(apis.ConditionSucceeded).Message, "earlier attempt") {
			t.Errorf("repeat %d did not replay the recorded outcome", i)
		}
	}
	raw2, _ := st.GetRaw(context.Background(), "ns/ctx-1")
	if string(raw1) != string(raw2) {
		t.Fatalf("the document changed:\n%s\n%s", raw1, raw2)
	}
}

func TestConfigUnavailableRetries(t *testing.T) {
	run := parseRun(t, fmt.Sprintf(header, "u")+`  params: [{name: op, value: load}, {name: id, value: ctx-1}]`)
	r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: staticSource{err: fmt.Errorf("waiting for ConfigMap config-cicdstatemgr")}, KubeClient: fakekube.NewSimpleClientset()}
	ev := r.ReconcileKind(context.Background(), run)
	checkStatus(t, run, wantStatus{status: corev1.ConditionUnknown, reason: ReasonRetrying, message: "config-cicdstatemgr", requeue: true}, ev)
}

func TestBackoffGrowsAndIsBounded(t *testing.T) {
	prev := time.Duration(0)
	for n := 0; n < 10; n++ {
		d := backoff(n, 5*time.Second)
		if d < prev || d > 5*time.Second {
			t.Fatalf("backoff(%d) = %s after %s", n, d, prev)
		}
		prev = d
	}
	if backoff(0, 0) != 100*time.Millisecond {
		t.Fatal("first backoff should be 100ms")
	}
	ms := time.Millisecond
	for _, c := range []struct {
		n         int
		max, want time.Duration
	}{
		{1, 0, 200 * ms}, {6, 0, 6400 * ms}, {7, 0, 10 * time.Second}, {1000, 0, 10 * time.Second},
		{3, 5 * time.Second, 800 * ms}, {6, 5 * time.Second, 5 * time.Second},
		{0, 30 * ms, 30 * ms}, {4, 30 * ms, 30 * ms},
	} {
		if got := backoff(c.n, c.max); got != c.want {
			t.Errorf("backoff(%d, %s) = %s, want %s", c.n, c.max, got, c.want)
		}
	}
}

// TestInitTakesTheAdminsDefaultTTL: without a ttl param, init uses
// datasources.redis.ttl of config-cicdstatemgr; the param wins over it.
func TestInitTakesTheAdminsDefaultTTL(t *testing.T) {
	src, st := newSource(t, redisSrv.Addr)
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1, ttl: 2h}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	src.cfg = cfg
	r := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset()}
	for id, want := range map[string]time.Duration{"ttl-default": 2 * time.Hour, "ttl-param": 30 * time.Minute} {
		ttlParam := ""
		if id == "ttl-param" {
			ttlParam = ", {name: ttl, value: 30m}"
		}
		y := fmt.Sprintf(header, "uid-"+id) + fmt.Sprintf(`  params: [{name: op, value: init}, {name: id, value: %s}, {name: app-config, value: "cicd-contexts: {stage: {}}"}%s]`, id, ttlParam)
		run := parseRun(t, y)
		r.ReconcileKind(context.Background(), run)
		if !run.IsSuccessful() {
			t.Fatalf("%s: %+v", id, run.Status)
		}
		got, err := st.TTL(context.Background(), store.Ref("ns", id))
		if err != nil || got <= want-time.Minute || got > want {
			t.Fatalf("%s: TTL %v (%v), want about %v", id, got, err, want)
		}
	}
}
