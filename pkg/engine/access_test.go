package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// sharedApp is owned by team-a and shared with team-r (read) and team-w
// (write); team-x gets nothing.
const sharedApp = `
share:
  - {namespace: team-r, access: read}
  - {namespace: team-w, access: write}
cicd-contexts:
  stage:
    channel: stage
    pipelines:
      build:
        event-handlers:
          done:
            set-values:
              s: {set: [{from: "x", to: "state.handled"}]}
`

func initShared(t *testing.T, e *engine.Engine, cfg *config.Config, id string) {
	t.Helper()
	_, err := e.Do(context.Background(), engine.Request{Namespace: "team-a", Asker: "team-a", Op: engine.OpInit, ID: id, Config: cfg,
		AppConfig: []byte(sharedApp), Sets: []document.Assignment{{Path: "state.version", Value: "1.0"}}})
	if err != nil {
		t.Fatal(err)
	}
}

func getVersion(asker, owner, id string) engine.Request {
	return engine.Request{Namespace: owner, Asker: asker, Op: engine.OpGet, ID: id, Gets: []engine.GetSpec{{Name: "v", Expr: "state.version"}}}
}

func TestContextsBelongToANamespace(t *testing.T) {
	e, cfg := newEngine(t)
	ctx := context.Background()
	initShared(t, e, cfg, "app")
	do := func(req engine.Request) (*engine.Outcome, error) {
		req.Config = cfg
		return e.Do(ctx, req)
	}

	// The same id in another namespace is another context: team-b's init
	// creates its own, and team-a's is untouched.
	if _, err := do(engine.Request{Namespace: "team-b", Asker: "team-b", Op: engine.OpInit, ID: "app", AppConfig: []byte(sharedApp),
		Sets: []document.Assignment{{Path: "state.version", Value: "2.0"}}}); err != nil {
		t.Fatal(err)
	}
	for ns, want := range map[string]string{"team-a": "1.0", "team-b": "2.0"} {
		out, err := do(getVersion(ns, ns, "app"))
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := out.Result("v"); v != want {
			t.Fatalf("%s reads %q, want %q", ns, v, want)
		}
	}

	// Another namespace without a grant cannot tell a context from a
	// missing one: same reason, same message shape.
	_, denied := do(getVersion("team-x", "team-a", "app"))
	_, missing := do(getVersion("team-x", "team-a", "nothing-here"))
	if engine.ReasonOf(denied, "") != engine.ReasonContextNotFound || engine.ReasonOf(missing, "") != engine.ReasonContextNotFound {
		t.Fatalf("denied: %v; missing: %v", denied, missing)
	}
	if strings.ReplaceAll(denied.Error(), `"app"`, `"ID"`) != strings.ReplaceAll(missing.Error(), `"nothing-here"`, `"ID"`) {
		t.Fatalf("a hidden context reads differently from a missing one:\n%s\n%s", denied, missing)
	}
	// Positive control: the owner does see it.
	if out, err := do(getVersion("team-a", "team-a", "app")); err != nil || out.Results[0].Value != "1.0" {
		t.Fatalf("owner: %v %v", out, err)
	}

	cases := []struct {
		name   string
		req    engine.Request
		reason string // "" = succeeds
	}{
		{"read grant reads", getVersion("team-r", "team-a", "app"), ""},
		{"write grant reads", getVersion("team-w", "team-a", "app"), ""},
		{"no grant cannot set", engine.Request{Asker: "team-x", Op: engine.OpSet, Sets: []document.Assignment{{Path: "state.version", Value: "x"}}}, engine.ReasonContextNotFound},
		{"read grant cannot set", engine.Request{Asker: "team-r", Op: engine.OpSet, Sets: []document.Assignment{{Path: "state.version", Value: "x"}}}, engine.ReasonInvalidParams},
		{"write grant sets state", engine.Request{Asker: "team-w", Op: engine.OpSet, Sets: []document.Assignment{{Path: "state.fromW", Value: "w"}}}, ""},
		{"write grant cannot set other data", engine.Request{Asker: "team-w", Op: engine.OpSet, Sets: []document.Assignment{{Path: "channel", Value: "x"}}}, engine.ReasonInvalidParams},
		{"write grant cannot re-init", engine.Request{Asker: "team-w", Op: engine.OpInit, AppConfig: []byte(sharedApp)}, engine.ReasonInvalidParams},
		{"write grant cannot run handlers", engine.Request{Asker: "team-w", Op: engine.OpHandleEvent, Event: &engine.Event{Pipeline: "build", Name: "done"}}, engine.ReasonInvalidParams},
		{"write grant cannot load", engine.Request{Asker: "team-w", Op: engine.OpLoad}, engine.ReasonInvalidParams},
		{"write grant cannot generate", engine.Request{Asker: "team-w", Op: engine.OpGenerate, Generator: "pipelines.build"}, engine.ReasonInvalidParams},
		{"owner sets other data", engine.Request{Asker: "team-a", Op: engine.OpSet, Sets: []document.Assignment{{Path: "channel", Value: "mine"}}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := c.req
			if req.Namespace == "" {
				req.Namespace = "team-a"
			}
			req.ID = "app"
			_, err := do(req)
			if got := engine.ReasonOf(err, ""); got != c.reason {
				t.Fatalf("reason %q (%v), want %q", got, err, c.reason)
			}
		})
	}
	out, err := do(engine.Request{Namespace: "team-a", Asker: "team-a", Op: engine.OpGet, ID: "app",
		Gets: []engine.GetSpec{{Name: "w", Expr: "state.fromW"}, {Name: "v", Expr: "state.version"}, {Name: "c", Expr: "channel"}}})
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := out.Result("w"); w != "w" {
		t.Fatalf("the write grant's set did not land: %q", w)
	}
	if v, _ := out.Result("v"); v != "1.0" {
		t.Fatalf("a refused write changed the state: %q", v)
	}
	if c, _ := out.Result("c"); c != "mine" {
		t.Fatalf("channel = %q", c)
	}
}

// TestConfigurationIsNotData: through a CustomRun (a request with an Asker),
// set writes data only; the CLI (no Asker) is an operator tool.
func TestConfigurationIsNotData(t *testing.T) {
	e, cfg := newEngine(t)
	ctx := context.Background()
	initShared(t, e, cfg, "app")
	for _, path := range []string{"pipelines.build.event-handlers.done", "jinja2Macros.all", "appPipelinesConfig", "variables.x",
		"cicd-contexts", "share", "share[]", "jinja2Macros", " pipelines.x"} {
		_, err := e.Do(ctx, engine.Request{Namespace: "team-a", Asker: "team-a", Op: engine.OpSet, ID: "app", Config: cfg,
			Sets: []document.Assignment{{Path: path, Value: "planted"}}})
		key := strings.TrimSuffix(strings.SplitN(strings.TrimSpace(path), ".", 2)[0], "[]")
		if engine.ReasonOf(err, "") != engine.ReasonInvalidParams || !strings.Contains(err.Error(), `"`+key+`"`) {
			t.Errorf("set %s: %v (want InvalidParams naming %q)", path, err, key)
		}
	}
	_, err := e.Do(ctx, engine.Request{Namespace: "team-a", Asker: "team-a", Op: engine.OpGet, ID: "app", Config: cfg,
		Vars: []tmpl.Var{{Key: "jinja2Macros.all", Expr: "{% macro x() %}{% endmacro %}"}}, Gets: []engine.GetSpec{{Name: "v", Expr: "state.version"}}})
	if engine.ReasonOf(err, "") != engine.ReasonInvalidParams {
		t.Fatalf("a tmpl-ctx-var replacing the macros: %v", err)
	}
	// The operator's CLI may change configuration.
	if _, err := e.Do(ctx, engine.Request{Namespace: "team-a", Op: engine.OpSet, ID: "app", Config: cfg,
		Sets: []document.Assignment{{Path: "pipelines.build.note", Value: "by an operator"}}}); err != nil {
		t.Fatalf("CLI set of configuration: %v", err)
	}
}

func TestShareBlockIsValidated(t *testing.T) {
	e, cfg := newEngine(t)
	for _, share := range []string{"share: team-b", "share: [{namespace: Team_B, access: read}]", "share: [{namespace: team-b, access: admin}]", "share: [team-b]"} {
		_, err := e.Do(context.Background(), engine.Request{Namespace: "team-a", Asker: "team-a", Op: engine.OpInit, ID: "bad", Config: cfg,
			AppConfig: []byte(share + "\ncicd-contexts: {stage: {}}\n")})
		if engine.ReasonOf(err, "") != engine.ReasonInvalidAppConfig || !strings.Contains(err.Error(), "share") {
			t.Errorf("%s: %v", share, err)
		}
	}
	_, err := e.Do(context.Background(), getVersionWith(cfg, "team-a", "team-a", "bad"))
	if engine.ReasonOf(err, "") != engine.ReasonContextNotFound {
		t.Fatalf("a refused init stored something: %v", err)
	}
}

func getVersionWith(cfg *config.Config, asker, owner, id string) engine.Request {
	r := getVersion(asker, owner, id)
	r.Config = cfg
	return r
}
