package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/fuzzbudget"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// appConfigReasons are the reasons a bad app config may fail with.
var appConfigReasons = map[string]bool{
	engine.ReasonInvalidParams: true, engine.ReasonInvalidAppConfig: true, engine.ReasonTemplateError: true,
}

// FuzzAppConfig runs random app configs (with one base file and a cicd
// context name) through BuildDocument and init: nothing panics; a failure is
// an *engine.Error with an app-config reason and a message, the same from
// BuildDocument and init (except for values JSON cannot encode, which only
// init rejects); what init stores is what BuildDocument built; both stay
// within the input's resource budget (appConfigLimit). The seeds hold issue
// 11's app-config attacks: alias and merge-key bombs, deep nesting, render
// bombs in variables and macros.
func FuzzAppConfig(f *testing.F) {
	f.Add(appYAML, baseYAML, "", "state.key1=v")
	f.Add(appYAML, baseYAML, "prod", "")
	f.Add("cicd-contexts: {stage: {channel: s}}", "", "", "")
	f.Add("cicd-contexts: {stage: null}", "", "", "state=x")
	f.Add("cicd-contexts: {stage: [1]}", "", "", "")
	f.Add("cicd-contexts: [stage]", "", "", "")
	f.Add("bases: base.yaml\ncicd-contexts: {stage: {}}", "", "", "")
	f.Add("bases: [../../etc/passwd, '']\ncicd-contexts: {stage: {}}", "", "", "")
	f.Add("bases: [base.yaml]\ncicd-contexts: {stage: {}}", "cicd-contexts: [", "", "")
	f.Add("bases: [base.yaml]\ncicd-contexts: {stage: {}}", "cicd-contexts: {stage: 1}", "", "")
	f.Add("jinja2-macros: {m: 1}\ncicd-contexts: {stage: {}}", "", "", "")
	f.Add("jinja2-macros: [x]\ncicd-contexts: {stage: {}}", "", "", "")
	f.Add("variables: {a: '{{ missing.x }}'}\ncicd-contexts: {stage: {}}", "", "", "")
	f.Add("variables: {a: '{% for %}'}\ncicd-contexts: {stage: {}}", "", "", "")
	f.Add("variables: {a: [1]}\ncicd-contexts: {stage: {variables: 3}}", "", "", "")
	f.Add("variables: x\ncicd-contexts: {stage: {state: 1}}", "", "", "state.a[]=1")
	f.Add("&a [*a]", "", "", "")
	f.Add("a: !!binary AAAA\ncicd-contexts: {stage: {n: .nan, i: .inf, big: 123456789012345678901234567890, t: 2001-12-14t21:59:43.10-05:00}}", "", "", "")
	f.Add("? [a]\n: 1\ncicd-contexts: {stage: {}}", "", "", "")
	f.Add("---\n...\n", "", "", "")
	f.Add("cicd-contexts: {stage: {}}\n---\nsecond: doc", "", "stage", "a.b.c=1")
	laughs, merges := "a: &a [x, x, x, x, x, x, x, x, x, x]\n", "a: &a {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8, k9: 9}\n"
	for i, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		prev := string(rune('a' + i))
		laughs += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		merges += n + ": &" + n + " {<<: [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]}\n"
	}
	f.Add(laughs+"cicd-contexts: {stage: {v: *i}}", "", "", "")
	f.Add("cicd-contexts: {stage: {}}\nbases: [base.yaml]", merges, "", "")
	f.Add("cicd-contexts: {stage: {v: "+strings.Repeat("[", 1001)+strings.Repeat("]", 1001)+"}}", "", "", "")
	f.Add("cicd-contexts: {stage: {}}\nvariables: {a: '{{ \"x\"|ljust:200000000|length }}', b: '{{ \"x\"|center:300000000|length }}'}", "", "", "")
	f.Add("cicd-contexts: {stage: {}}\nvariables:\n  a: '{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}'", "", "", "")
	f.Add("cicd-contexts: {stage: {}}\njinja2-macros: {m: '{% macro f() %}{{ f() }}{% endmacro %}'}\nvariables: {a: '{{ f() }}'}", "", "", "")
	f.Add("cicd-contexts: {stage: {}}\nvariables: {a: '{{ \"(\"|ljust:100000 }}', b: '{{ variables.a|json_dumps:100000 }}'}", "", "", "state.x={{ "+strings.Repeat("(", 10000)+"1"+strings.Repeat(")", 10000)+" }}")

	st, err := store.New(store.Options{Addr: srv.Addr, Username: srv.Username, Password: srv.Password, KeyPrefix: "fuzz-app-config"})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1}\n"), nil)
	if err != nil {
		f.Fatal(err)
	}
	e := &engine.Engine{Store: st, Templates: tmpl.New(tmpl.Options{})}

	f.Fuzz(func(t *testing.T, app, base, cicdContext, set string) {
		load := func(name string) ([]byte, error) {
			if name == "base.yaml" {
				return []byte(base), nil
			}
			return nil, errors.New("no such base file")
		}
		req := engine.Request{Namespace: "ns", Op: engine.OpInit, ID: "fuzz-app", Config: cfg, AppConfig: []byte(app), Bases: load, CicdContext: cicdContext}
		if set != "" {
			a, err := document.ParseAssignment(set, true)
			if err != nil {
				return
			}
			req.Sets = []document.Assignment{a}
		}
		var doc *document.Map
		var out *engine.Outcome
		var buildErr, initErr error
		fuzzbudget.Check(t, appConfigLimit(app, base, cicdContext, set), func() {
			doc, buildErr = e.BuildDocument(context.Background(), req)
			out, initErr = e.Do(context.Background(), req)
		}, app, base, cicdContext, set)
		checkAppConfigError(t, "BuildDocument", buildErr)
		checkAppConfigError(t, "init", initErr)
		if (buildErr == nil) != (initErr == nil) {
			t.Fatalf("BuildDocument and init disagree: %v / %v", buildErr, initErr)
		}
		if buildErr != nil {
			if b, i := engine.ReasonOf(buildErr, ""), engine.ReasonOf(initErr, ""); b != i {
				t.Fatalf("BuildDocument fails with %s, init with %s", b, i)
			}
			return
		}
		built := document.MustJSON(doc, document.PythonJSON)
		if got := document.MustJSON(out.Doc, document.PythonJSON); got != built {
			t.Fatalf("init returned another document than BuildDocument:\n%s\n%s", got, built)
		}
		stored, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpGet, ID: "fuzz-app", Config: cfg, Gets: []engine.GetSpec{{Name: "doc", Expr: "$"}}})
		if err != nil {
			t.Fatalf("reading back what init stored: %v", err)
		}
		if v, _ := stored.Result("doc"); v != built {
			t.Fatalf("init stored another document than it built:\n%s\n%s", v, built)
		}
	})
}

// appConfigLimit is the resource budget of BuildDocument and init of an
// app config (internal/fuzzbudget): each renders every template of the
// input, each render within the render budget (output and steps, a step
// charged like a byte), and builds a document within the context budget.
func appConfigLimit(input ...any) fuzzbudget.Limit {
	renders := fuzzbudget.Renders(input...)
	perOp := renders*(tmpl.DefaultMaxOutput+tmpl.DefaultMaxSteps) + config.DefaultContextBytes
	return fuzzbudget.Limit{
		Time:  2 * time.Duration(renders) * fuzzbudget.Time,
		Bytes: fuzzbudget.Bytes(2*fuzzbudget.Size(input...), 2*perOp),
	}
}

func checkAppConfigError(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var e *engine.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v is a %T, not an *engine.Error", what, err, err)
	}
	if !appConfigReasons[e.Reason] || strings.TrimSpace(e.Message) == "" {
		t.Fatalf("%s: error has reason %q and message %q", what, e.Reason, e.Message)
	}
}
