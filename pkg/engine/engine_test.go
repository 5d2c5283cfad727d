package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

var srv *redistest.Server

func TestMain(m *testing.M) {
	redistest.Main(m, &srv)
}

const appYAML = `
bases: [base.yaml]
jinja2-macros:
  shout: |
    {%- macro shout(m) -%}
      {{ m }}!
    {%- endmacro -%}
variables:
  v1: "{{ state.key1 }}-{{ shout('x') }}"
  v2: "{{ variables.v1 }}/{{ state.cicdContextName }}"
cicd-contexts:
  stage:
    channel: stage
    state: {ignored: true}
    pipelines:
      build:
        generators:
          gen:
            first:
              if: "{% if 'alpine' in state.tag %}yes{% endif %}"
              set:
                - {key: state.out.first, value: "{{ state.tag }}-{{ ctx.v }}"}
                - {key: "", value: skipped}
                - {key: state.out.empty, value: ""} # a falsy raw value is not set
            second:
              if: "{% if state.out.first %}yes{% endif %}"
              set:
                - {key: "state.out.second ", value: "saw {{ state.out.first }}"}
            never:
              if: "   "
              set:
                - {key: state.out.never, value: x}
  prod:
    channel: prod
`

const baseYAML = `
jinja2-macros:
  hello: "{%- macro hello(n) -%}hello {{n}}{%- endmacro -%}"
variables:
  b1: base
cicd-contexts:
  stage:
    pipelines:
      build: {extra: fromBase}
`

func newEngine(t *testing.T) (*engine.Engine, *config.Config) {
	t.Helper()
	st, err := store.New(store.Options{Addr: srv.Addr, Username: srv.Username, Password: srv.Password,
		KeyPrefix: "t" + strings.NewReplacer("/", "-").Replace(t.Name())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1}\n  dashboard: {url: http://dash}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &engine.Engine{Store: st, Templates: tmpl.New(tmpl.Options{})}, cfg
}

func bases(name string) ([]byte, error) {
	if name == "base.yaml" {
		return []byte(baseYAML), nil
	}
	return nil, errors.New("no such base")
}

func initDoc(t *testing.T, e *engine.Engine, cfg *config.Config, id string, sets ...document.Assignment) *document.Map {
	t.Helper()
	out, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpInit, ID: id, Config: cfg, AppConfig: []byte(appYAML), Bases: bases, Sets: sets})
	if err != nil {
		t.Fatal(err)
	}
	return out.Doc
}

func js(v any) string { return document.MustJSON(v, document.PythonJSON) }

func TestInitBuildsDocumentInOrder(t *testing.T) {
	e, cfg := newEngine(t)
	doc := initDoc(t, e, cfg, "ctx-1", document.Assignment{Path: "state.key1", Value: "value1"})
	if got := strings.Join(doc.Keys(), ","); got != "pipelines,channel,state,appPipelinesConfig,jinja2Macros,variables" {
		t.Fatalf("top-level keys = %s", got)
	}
	checks := map[string]string{
		"state":                        `{"cicdContextDataId": "ctx-1", "cicdContextName": "stage", "key1": "value1"}`,
		"variables":                    `{"b1": "base", "v1": "value1-x!", "v2": "value1-x!/stage"}`,
		"pipelines.build.extra":        `"fromBase"`,
		"jinja2Macros.byName":          `{"hello": "{%- macro hello(n) -%}hello {{n}}{%- endmacro -%}", "shout": "{%- macro shout(m) -%}\n  {{ m }}!\n{%- endmacro -%}\n"}`,
		"appPipelinesConfig.bases":     `["base.yaml"]`,
		"appPipelinesConfig.variables": `{"v1": "{{ state.key1 }}-{{ shout('x') }}", "v2": "{{ variables.v1 }}/{{ state.cicdContextName }}"}`,
	}
	for p, want := range checks {
		v, _, _ := document.Lookup(doc, p)
		if js(v) != want {
			t.Errorf("%s = %s\nwant %s", p, js(v), want)
		}
	}
	stored, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpGet, ID: "ctx-1", Config: cfg, Gets: []engine.GetSpec{{Name: "v", Expr: "$"}}})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := stored.Result("v"); v != js(doc) {
		t.Fatalf("stored document differs:\n%s\n%s", v, js(doc))
	}
}

func TestInitOverwritesAndPicksContext(t *testing.T) {
	e, cfg := newEngine(t)
	initDoc(t, e, cfg, "ctx", document.Assignment{Path: "state.old", Value: "x"})
	out, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpInit, ID: "ctx", Config: cfg, AppConfig: []byte(appYAML), Bases: bases, CicdContext: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := document.Lookup(out.Doc, "state"); js(v) != `{"cicdContextDataId": "ctx", "cicdContextName": "prod"}` {
		t.Fatalf("state = %s", js(v))
	}
	if v, _ := out.Doc.Get("channel"); v != "prod" {
		t.Fatalf("channel = %v", v)
	}
}

func get(t *testing.T, e *engine.Engine, cfg *config.Config, id, expr string, vars ...string) (string, error) {
	t.Helper()
	pv, err := tmpl.ParseVars(vars)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpGet, ID: id, Config: cfg, Vars: pv, Gets: []engine.GetSpec{{Name: "v", Expr: expr}}})
	if err != nil {
		return "", err
	}
	v, _ := out.Result("v")
	return v, nil
}

func TestGetFormatsAndTmplCtxVars(t *testing.T) {
	e, cfg := newEngine(t)
	initDoc(t, e, cfg, "g", document.Assignment{Path: "state.key1", Value: "value1"})
	sets := []document.Assignment{
		{Path: "state.tpl", Value: "{{ t.p }}|{{ configData.dashboard.url }}"},
		{Path: "state.num", Value: 3},
		{Path: "state.f", Value: 1.5},
		{Path: "state.yes", Value: true},
		{Path: "state.no", Value: false},
		{Path: "state.nil", Value: nil},
		{Path: "state.map", Value: document.NewMap()},
		{Path: "state.list", Value: []any{"a", "{{ x }}", 2}},
		{Path: "state.empty", Value: ""},
		{Path: "state.lead", Value: "   spaced"},
	}
	if _, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpSet, ID: "g", Config: cfg, Sets: sets}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		expr string
		vars []string
		want string
		err  string
	}{
		{"state.tpl", []string{"t.p=state.key1"}, "value1|http://dash", ""},
		{"state.tpl", []string{"t.p=literal-value"}, "literal-value|http://dash", ""},
		{"state.tpl", []string{"t.p=x=1 y=2"}, "x=1 y=2|http://dash", ""},
		{"state.tpl", []string{"t.p=state.list"}, `['a', '{{ x }}', 2]|http://dash`, ""},
		{"state.tpl", []string{"t.p=state.empty"}, "", "undefined"}, // falsy: t stays undefined
		{"state.tpl", nil, "", "undefined"},
		{"state.num", nil, "3", ""},
		{"state.f", nil, "1.5", ""},
		{"state.yes", nil, "true", ""},
		{"state.no", nil, "false", ""},
		{"state.nil", nil, "", ""},
		{"state.map", nil, "{}", ""},
		{"state.list", nil, `["a", "{{ x }}", 2]`, ""},
		{"state.missing", nil, "", ""},
		{"state.empty", nil, "", ""},
		{"state.lead", nil, "spaced", ""}, // macros present: leading whitespace eaten
		{"$..cicdContextName", nil, "stage", ""},
		{"state[", nil, "", "get"},
	}
	for _, c := range cases {
		got, err := get(t, e, cfg, "g", c.expr, c.vars...)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %v: err %v, want %q", c.expr, c.vars, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s %v = %q, %v; want %q", c.expr, c.vars, got, err, c.want)
		}
	}
}

func TestGenerate(t *testing.T) {
	e, cfg := newEngine(t)
	initDoc(t, e, cfg, "gen", document.Assignment{Path: "state.tag", Value: "app-alpine-1"})
	vars, _ := tmpl.ParseVars([]string{"ctx.v=v1"})
	out, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpGenerate, ID: "gen", Config: cfg, Vars: vars, Generator: "pipelines.build.generators.gen"})
	if err != nil {
		t.Fatal(err)
	}
	v, _, _ := document.Lookup(out.Doc, "state.out")
	if want := `{"first": "app-alpine-1-v1", "second": "saw app-alpine-1-v1"}`; js(v) != want {
		t.Fatalf("state.out = %s\nwant %s", js(v), want)
	}
	for _, bad := range []string{"pipelines.build.generators.nothing", "$..set", "state.tag"} {
		_, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpGenerate, ID: "gen", Config: cfg, Generator: bad})
		if engine.ReasonOf(err, "") != engine.ReasonInvalidParams {
			t.Errorf("generator %s: err %v, want InvalidParams", bad, err)
		}
	}
}

// TestBadInputLosesNothing: every failure names its reason and leaves the
// stored document exactly as it was.
func TestBadInputLosesNothing(t *testing.T) {
	e, cfg := newEngine(t)
	initDoc(t, e, cfg, "keep", document.Assignment{Path: "state.s", Value: "text"})
	before, _ := get(t, e, cfg, "keep", "$")
	cases := []struct {
		name   string
		req    engine.Request
		reason string
	}{
		{"unknown id", engine.Request{Namespace: "ns", Op: engine.OpSet, ID: "nope", Sets: []document.Assignment{{Path: "a", Value: "b"}}}, engine.ReasonContextNotFound},
		{"marker on a string", engine.Request{Namespace: "ns", Op: engine.OpSet, ID: "keep", Sets: []document.Assignment{{Path: "state.ok", Value: "1"}, {Path: "state.s[]", Value: "x"}}}, engine.ReasonInvalidParams},
		{"malformed app config", engine.Request{Namespace: "ns", Op: engine.OpInit, ID: "keep", AppConfig: []byte("a: [1, 2")}, engine.ReasonInvalidAppConfig},
		{"unknown cicd context", engine.Request{Namespace: "ns", Op: engine.OpInit, ID: "keep", AppConfig: []byte(appYAML), Bases: bases, CicdContext: "qa"}, engine.ReasonInvalidParams},
		{"missing base", engine.Request{Namespace: "ns", Op: engine.OpInit, ID: "keep", AppConfig: []byte("bases: [nope.yaml]\ncicd-contexts: {stage: {}}"), Bases: bases}, engine.ReasonInvalidAppConfig},
		{"base climbing out", engine.Request{Namespace: "ns", Op: engine.OpInit, ID: "keep", AppConfig: []byte("bases: [../secrets.yaml]\ncicd-contexts: {stage: {}}"), Bases: bases}, engine.ReasonInvalidAppConfig},
		{"template syntax error in a variable", engine.Request{Namespace: "ns", Op: engine.OpInit, ID: "keep", AppConfig: []byte("variables: {v: '{{ oops'}\ncicd-contexts: {stage: {}}")}, engine.ReasonTemplateError},
		{"base type clash", engine.Request{Namespace: "ns", Op: engine.OpInit, ID: "keep", AppConfig: []byte("bases: [base.yaml]\nvariables: [x]\ncicd-contexts: {stage: {}}"), Bases: bases}, engine.ReasonInvalidAppConfig},
		{"template error in get with sets", engine.Request{Namespace: "ns", Op: engine.OpGet, ID: "keep", Sets: []document.Assignment{{Path: "state.t", Value: "{% if %}"}}, Gets: []engine.GetSpec{{Name: "v", Expr: "state.t"}}}, engine.ReasonTemplateError},
		{"no id", engine.Request{Namespace: "ns", Op: engine.OpSet, ID: " "}, engine.ReasonInvalidParams},
		{"unknown op", engine.Request{Namespace: "ns", Op: "delete", ID: "keep"}, engine.ReasonInvalidParams},
	}
	for _, c := range cases {
		c.req.Config = cfg
		_, err := e.Do(context.Background(), c.req)
		var ee *engine.Error
		if !errors.As(err, &ee) || ee.Reason != c.reason || ee.Message == "" {
			t.Errorf("%s: err %v (%T), want reason %s", c.name, err, err, c.reason)
		}
		if after, _ := get(t, e, cfg, "keep", "$"); after != before {
			t.Errorf("%s: the document changed:\n%s\n%s", c.name, before, after)
		}
	}
}

func TestRedisUnreachableFailsFast(t *testing.T) {
	st, err := store.New(store.Options{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, cfg := newEngine(t)
	e := &engine.Engine{Store: st, Templates: tmpl.New(tmpl.Options{})}
	start := time.Now()
	_, err = e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpGet, ID: "x", Config: cfg, Gets: []engine.GetSpec{{Name: "v", Expr: "a"}}})
	ee := engine.AsError(err, "")
	if ee == nil || ee.Reason != engine.ReasonStoreUnavailable || !ee.Transient {
		t.Fatalf("err %v, want transient StoreUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestExactlyOnceByOpKey(t *testing.T) {
	e, cfg := newEngine(t)
	initDoc(t, e, cfg, "once")
	req := engine.Request{Namespace: "ns", Op: engine.OpSet, ID: "once", Config: cfg, OpKey: "uid-1", Sets: []document.Assignment{{Path: "state.l[]", Value: "a"}}}
	for i := 0; i < 3; i++ {
		out, err := e.Do(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if out.Replayed != (i > 0) {
			t.Fatalf("run %d: replayed=%v", i, out.Replayed)
		}
	}
	if got, _ := get(t, e, cfg, "once", "state.l"); got != `["a"]` {
		t.Fatalf("state.l = %s, want one append", got)
	}
}
