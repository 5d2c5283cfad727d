package reconciler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	fakekube "k8s.io/client-go/kubernetes/fake"
	testclock "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"

	"github.com/cicdstatemgr/cicdstatemgr/internal/fuzzbudget"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// fuzzParamNames are the names the extra param of FuzzParams picks from (a
// byte of the input), besides a name of the fuzzer's own.
var fuzzParamNames = []string{ParamOp, ParamID, ParamCicdContext, ParamAppConfig, ParamAppConfigRef, ParamBasesRef,
	ParamSet, ParamSetYAML, ParamGet, ParamTmplCtxVar, ParamEvent, ParamGenerator, ParamTTL}

// fuzzValue is a param value of the type picked by kind: string, array or
// object.
func fuzzValue(kind uint8, s string) v1beta1.ParamValue {
	switch kind % 3 {
	case 1:
		return v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: strings.Split(s, "\n")}
	case 2:
		return v1beta1.ParamValue{Type: v1beta1.ParamTypeObject, ObjectVal: map[string]string{"k": s}}
	}
	return v1beta1.ParamValue{Type: v1beta1.ParamTypeString, StringVal: s}
}

// paramsLimit is the resource budget of parsing and reconciling a CustomRun
// with the given params (internal/fuzzbudget): its op may render every
// template of the params and of the app config the context was made with
// (an event runs its handlers), each within the render budget (output and
// steps, a step charged like a byte), and read and write a document within
// the context budget.
func paramsLimit(params ...string) fuzzbudget.Limit {
	input := []any{appConfig}
	for _, p := range params {
		input = append(input, p)
	}
	renders := fuzzbudget.Renders(input...)
	return fuzzbudget.Limit{
		Time:  time.Duration(renders) * fuzzbudget.Time,
		Bytes: fuzzbudget.Bytes(fuzzbudget.Size(input...), renders*(tmpl.DefaultMaxOutput+tmpl.DefaultMaxSteps)+config.DefaultContextBytes),
	}
}

// FuzzParams runs random CustomRun params through parseParams and then
// ReconcileKind, against an engine built as cmd/controller builds it over a
// real Redis: nothing panics; parseParams fails only with InvalidParams and
// a message; the reconciled run has a Succeeded condition, and a failed or
// still running one says why (reason and message); parsing and reconciling
// stay within the params' resource budget (paramsLimit). The seeds hold
// issue 11's attacks through params: render bombs in set and get
// templates, alias bombs in set-yaml and an inline app config, deep nesting.
func FuzzParams(f *testing.F) {
	f.Add("set", "ctx-1", "state.a=1\nstate.l[]=x", "state.y={n: 1}", "a=state.a", "", "", uint8(0), "", "", uint8(0))
	f.Add("get", "ctx-1", "state.t={{ state.k }}|x", "", "k=state.k\ncsv:csv=state.l\nbad:xml=state", "", "", uint8(0), ParamTmplCtxVar, "x.y=state.k", uint8(1))
	f.Add("init", "ctx-2", "state.a=1", "", "", "cicd-contexts: {stage: {channel: s}}", "", uint8(0), ParamTTL, "1h", uint8(0))
	f.Add("init", "ctx-3", "", "", "", "", "", uint8(0), ParamAppConfigRef, "configmap/apps/app.yaml", uint8(0))
	f.Add("init", "ctx-4", "", "", "", "bases: [../x]\ncicd-contexts: {stage: {}}", "", uint8(0), ParamBasesRef, "configmap/none", uint8(0))
	f.Add("init", "ctx-5", "", "", "", "cicd-contexts: {stage: {}}", "", uint8(0), ParamCicdContext, "prod", uint8(0))
	f.Add("handle-event", "ctx-1", "", "", "", "", "build=start", uint8(0), "", "", uint8(0))
	f.Add("handle-event", "ctx-1", "", "", "", "", "a=b=c", uint8(0), "", "", uint8(0))
	f.Add("generate", "ctx-1", "", "", "", "", "", uint8(0), ParamGenerator, "pipelines.build.generators.g", uint8(0))
	f.Add("load", "ctx-1", "", "", "", "", "", uint8(2), ParamTTL, "-1s", uint8(0))
	f.Add("delete", " ", "novalue", "a=[1, 2", "=x\nid=state", "", "", uint8(1), "colour", "red", uint8(2))
	f.Add("", "", "", "", "", "", "", uint8(255), ParamOp, "set", uint8(1))
	laughs, flow := "a: &a [x, x, x, x, x, x, x, x, x, x]\n", "{a: &a [x, x, x, x, x, x, x, x, x, x]"
	for i, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		prev := string(rune('a' + i))
		laughs += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		flow += ", " + n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]"
	}
	f.Add("set", "ctx-1", `state.a={{ "x"|ljust:200000000|length }}`, "state.y="+flow+"}", `a={{ "x"|center:300000000|length }}`, "", "", uint8(0), "", "", uint8(0))
	f.Add("init", "ctx-6", "", "", "", laughs+"cicd-contexts: {stage: {v: *i}}", "", uint8(0), "", "", uint8(0))
	f.Add("set", "ctx-1", "state.f={% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}", "", "", "", "", uint8(0), "", "", uint8(0))
	f.Add("get", "ctx-1", "", "", "n={{ "+strings.Repeat("(", 10000)+"1"+strings.Repeat(")", 10000)+" }}", "", "", uint8(0), "", "", uint8(0))
	f.Add("set", "ctx-1", "", "state.d="+strings.Repeat("[", 1001)+strings.Repeat("]", 1001), "", "", "", uint8(0), "", "", uint8(0))
	// test/e2e/budgets_test.go's CustomRun: an app config with a doubly
	// recursive macro, then one set of all three bombs
	f.Add("init", "ctx-8", "", "", "", "cicd-contexts: {stage: {}}\njinja2-macros:\n  f: \"{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}\"", "", uint8(0), "", "", uint8(0))
	f.Add("set", "ctx-8", `state.pad={{ "x"|ljust:200000000|length }}`+"\nstate.fork={{ f(40) }}\nstate.deep={{ "+strings.Repeat("(", 100000)+"1"+strings.Repeat(")", 100000)+" }}", "", "", "", "", uint8(0), "", "", uint8(0))

	st, err := store.New(store.Options{Addr: redisSrv.Addr, Username: redisSrv.Username, Password: redisSrv.Password, KeyPrefix: "fuzz-params"})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1}\n"), nil)
	if err != nil {
		f.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := tmpl.New(tmpl.Options{})
	choices := gate.New(st)
	eng := &engine.Engine{Store: st, Templates: r, Gates: choices,
		Handlers: handlers.NewRunner(st, r, quiet, handlers.WithGates(choices))}
	src := staticSource{eng: eng, cfg: cfg}
	if _, err := eng.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpInit, ID: "ctx-1", Config: cfg, AppConfig: []byte(appConfig)}); err != nil {
		f.Fatal(err)
	}
	rec := &Reconciler{Clock: testclock.NewFakePassiveClock(now), Source: src, KubeClient: fakekube.NewSimpleClientset(appConfigMap())}
	n := 0

	f.Fuzz(func(t *testing.T, op, id, set, setYAML, get, appCfg, event string, omit uint8, extraName, extraValue string, extraKind uint8) {
		var prms v1beta1.Params
		add := func(name string, v v1beta1.ParamValue) { prms = append(prms, v1beta1.Param{Name: name, Value: v}) }
		if omit&1 == 0 {
			add(ParamOp, fuzzValue(0, op))
		}
		if omit&2 == 0 {
			add(ParamID, fuzzValue(0, id))
		}
		if set != "" {
			add(ParamSet, fuzzValue(1+omit>>2&1, set)) // an array, or an object now and then
		}
		if setYAML != "" {
			add(ParamSetYAML, fuzzValue(1, setYAML))
		}
		if get != "" {
			add(ParamGet, fuzzValue(1, get))
		}
		if appCfg != "" {
			add(ParamAppConfig, fuzzValue(0, appCfg))
		}
		if event != "" {
			add(ParamEvent, fuzzValue(omit>>3&1, event)) // a string, or an array now and then
		}
		if extraName != "" {
			name := extraName
			if k := int(extraName[0]); len(extraName) == 1 {
				name = fuzzParamNames[k%len(fuzzParamNames)]
			}
			add(name, fuzzValue(extraKind, extraValue))
		}
		n++
		run := &v1beta1.CustomRun{}
		run.Name, run.Namespace, run.UID = "run", "ns", types.UID(fmt.Sprintf("fuzz-%d-%d", n, len(prms)))
		run.Spec.CustomRef = &v1beta1.TaskRef{APIVersion: APIVersion, Kind: Kind}
		run.Spec.Params = prms

		var parseErr error
		fuzzbudget.Check(t, paramsLimit(op, id, set, setYAML, get, appCfg, event, extraName, extraValue), func() {
			_, parseErr = parseParams(run.DeepCopy())
			rec.ReconcileKind(context.Background(), run)
		}, op, id, set, setYAML, get, appCfg, event, omit, extraName, extraValue, extraKind)
		if parseErr != nil {
			e := engine.AsError(parseErr, "")
			if e.Reason != engine.ReasonInvalidParams || strings.TrimSpace(e.Message) == "" {
				t.Fatalf("parseParams error %q has reason %q, want %s and a message", e.Message, e.Reason, engine.ReasonInvalidParams)
			}
		}

		c := run.Status.GetCondition(apis.ConditionSucceeded)
		if c == nil {
			t.Fatalf("no Succeeded condition after ReconcileKind: %+v", run.Status)
		}
		switch c.Status {
		case corev1.ConditionTrue:
			if len(run.Status.Results) == 0 || run.Status.Results[0].Name != ResultID {
				t.Fatalf("a succeeded run has no id result: %+v", run.Status.Results)
			}
		case corev1.ConditionFalse:
			if c.Reason == "" || strings.TrimSpace(c.Message) == "" {
				t.Fatalf("failed without a reason and a message: %+v", c)
			}
			if run.Status.CompletionTime == nil {
				t.Fatalf("failed run without a completion time: %+v", c)
			}
		default:
			if c.Reason != ReasonRetrying && c.Reason != ReasonWaitingForDecision && c.Reason != ReasonRunning || strings.TrimSpace(c.Message) == "" {
				t.Fatalf("still running with condition %+v", c)
			}
		}
	})
}
