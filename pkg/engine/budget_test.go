package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

func budgetConfig(t *testing.T, budgets string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1}\n  budgets: "+budgets+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func wantReason(t *testing.T, err error, reason string, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", reason)
	}
	if got := engine.ReasonOf(err, "?"); got != reason {
		t.Fatalf("reason %s (%v), want %s", got, err, reason)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Fatalf("error %q does not say %q", err, c)
		}
	}
}

func exists(t *testing.T, e *engine.Engine, id string) bool {
	t.Helper()
	ok, err := e.Store.(*store.Store).Exists(context.Background(), store.Ref("ns", id))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func initWith(e *engine.Engine, cfg *config.Config, id, app string, load engine.BaseLoader, sets ...document.Assignment) error {
	_, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpInit, ID: id, Config: cfg, AppConfig: []byte(app), Bases: load, Sets: sets})
	return err
}

func TestAppConfigBudget(t *testing.T) {
	e, _ := newEngine(t)
	n := len(appYAML)
	if err := initWith(e, budgetConfig(t, fmt.Sprintf("{appConfigBytes: %d}", n)), "at", appYAML, bases); err != nil {
		t.Fatalf("at the budget: %v", err)
	}
	err := initWith(e, budgetConfig(t, fmt.Sprintf("{appConfigBytes: %d}", n-1)), "over", appYAML, bases)
	wantReason(t, err, engine.ReasonInvalidAppConfig, fmt.Sprintf("app config is %d bytes, over the budget of %d bytes (budgets.appConfigBytes)", n, n-1))
	if exists(t, e, "over") {
		t.Fatal("a context was written")
	}
}

func TestBaseBudget(t *testing.T) {
	e, _ := newEngine(t)
	big := baseYAML + "# " + strings.Repeat("x", len(appYAML)) + "\n"
	load := func(string) ([]byte, error) { return []byte(big), nil }
	if err := initWith(e, budgetConfig(t, fmt.Sprintf("{appConfigBytes: %d}", len(big))), "at", appYAML, load); err != nil {
		t.Fatalf("at the budget: %v", err)
	}
	err := initWith(e, budgetConfig(t, fmt.Sprintf("{appConfigBytes: %d}", len(big)-1)), "over", appYAML, load)
	wantReason(t, err, engine.ReasonInvalidAppConfig, `base "base.yaml" is`, "budgets.appConfigBytes")
	if exists(t, e, "over") {
		t.Fatal("a context was written")
	}
}

func TestValueBudgetAtInit(t *testing.T) {
	e, _ := newEngine(t)
	cfg := budgetConfig(t, "{valueBytes: 16}")
	if err := initWith(e, cfg, "at", appYAML, bases, document.Assignment{Path: "state.v", Value: strings.Repeat("a", 16)}); err != nil {
		t.Fatalf("at the budget: %v", err)
	}
	secret := strings.Repeat("s", 17)
	err := initWith(e, cfg, "over", appYAML, bases, document.Assignment{Path: "state.ok", Value: "x"}, document.Assignment{Path: "state.v", Value: secret})
	wantReason(t, err, engine.ReasonInvalidParams, "set state.v: the value is 17 bytes, over the budget of 16 bytes (budgets.valueBytes)")
	if strings.Contains(err.Error(), secret) {
		t.Fatal("the error echoes the value")
	}
	if exists(t, e, "over") {
		t.Fatal("a context was written")
	}
	// a set-yaml value counts its compact JSON: {"k":"123456789"} is 17 bytes
	m := document.NewMap()
	m.Set("k", "12345678")
	if err := initWith(e, cfg, "yaml-at", appYAML, bases, document.Assignment{Path: "state.m", Value: m}); err != nil {
		t.Fatalf("set-yaml at the budget: %v", err)
	}
	m.Set("k", "123456789")
	wantReason(t, initWith(e, cfg, "yaml-over", appYAML, bases, document.Assignment{Path: "state.m", Value: m}),
		engine.ReasonInvalidParams, "set state.m: the value is 17 bytes")
}

// TestCheckBudgetsForEveryOp: CheckBudgets, which Do runs for every op, refuses
// a set value over the budget whatever the op.
func TestCheckBudgetsForEveryOp(t *testing.T) {
	cfg := budgetConfig(t, "{valueBytes: 4}")
	for _, op := range []engine.Op{engine.OpSet, engine.OpLoad, engine.OpHandleEvent, engine.OpGet, engine.OpGenerate} {
		req := engine.Request{Op: op, ID: "x", Config: cfg, Sets: []document.Assignment{{Path: "a", Value: "1234"}}}
		if err := engine.CheckBudgets(req); err != nil {
			t.Fatalf("%s at the budget: %v", op, err)
		}
		req.Sets = append(req.Sets, document.Assignment{Path: "b.c", Value: []any{"12"}})
		wantReason(t, engine.CheckBudgets(req), engine.ReasonInvalidParams, "set b.c: the value is 6 bytes, over the budget of 4 bytes")
	}
	// without a configuration: the defaults
	big := strings.Repeat("v", int(config.DefaultValueBytes)+1)
	wantReason(t, engine.CheckBudgets(engine.Request{Sets: []document.Assignment{{Path: "a", Value: big}}}), engine.ReasonInvalidParams, "1048576 bytes (budgets.valueBytes)")
}

func TestContextBudgetAtInit(t *testing.T) {
	e, cfg := newEngine(t)
	initDoc(t, e, cfg, "probe")
	st := e.Store.(*store.Store)
	h, err := st.Client().HGetAll(context.Background(), st.DocKey(store.Ref("ns", "probe"))).Result()
	if err != nil {
		t.Fatal(err)
	}
	var size int64 // the encoded size of the context: "probe2" is one byte more
	for f, v := range h {
		size += int64(len(f) + len(v))
	}
	small, err := store.New(store.Options{Addr: srv.Addr, Username: srv.Username, Password: srv.Password,
		KeyPrefix: "t" + strings.NewReplacer("/", "-").Replace(t.Name()), MaxContextBytes: size - 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { small.Close() })
	e2 := &engine.Engine{Store: small, Templates: tmpl.New(tmpl.Options{})}
	err = initWith(e2, cfg, "probe2", appYAML, bases)
	wantReason(t, err, engine.ReasonContextTooLarge, fmt.Sprintf("over the budget of %d bytes (budgets.contextBytes)", size-1))
	if exists(t, e2, "probe2") {
		t.Fatal("a context was written")
	}
}

// TestBudgetsOnUpdates: a set over budgets.valueBytes and a set that would
// grow the stored context over budgets.contextBytes fail with their reasons
// through Do, and write nothing.
func TestBudgetsOnUpdates(t *testing.T) {
	e, cfg := newEngine(t)
	st := e.Store.(*store.Store)
	small, err := store.New(store.Options{Addr: srv.Addr, Username: srv.Username, Password: srv.Password,
		KeyPrefix: st.OpKey("")[:len(st.OpKey(""))-len(":op:")], MaxContextBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	initDoc(t, e, cfg, "u")
	bounded := &engine.Engine{Store: small, Templates: e.Templates}
	set := func(eng *engine.Engine, c *config.Config, v string) error {
		_, err := eng.Do(context.Background(), engine.Request{Namespace: "ns", Asker: "ns", Op: engine.OpSet, ID: "u", Config: c,
			Sets: []document.Assignment{{Path: "state.big", Value: v}}})
		return err
	}
	wantReason(t, set(e, budgetConfig(t, "{valueBytes: 10}"), strings.Repeat("v", 11)), engine.ReasonInvalidParams, "budgets.valueBytes")
	if err := set(bounded, cfg, strings.Repeat("x", 100)); err != nil {
		t.Fatalf("a small set under the context budget: %v", err)
	}
	wantReason(t, set(bounded, cfg, strings.Repeat("y", 8000)), engine.ReasonContextTooLarge, "budgets.contextBytes")
	doc, err := st.Get(context.Background(), store.Ref("ns", "u"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := document.Lookup(doc, "state.big"); v != strings.Repeat("x", 100) {
		t.Fatalf("a refused write changed the context: %.20v", v)
	}
}

// TestRendersOfOneOpShareABudget: variables that each render within the
// output budget but together exceed budgets.contextBytes fail the init with
// the opOutput budget, and nothing is written; fewer of them go through.
func TestRendersOfOneOpShareABudget(t *testing.T) {
	e, _ := newEngine(t)
	cfg := budgetConfig(t, "{contextBytes: 20000}")
	app := func(n int) string {
		var b strings.Builder
		b.WriteString("cicd-contexts:\n  stage: {}\nvariables:\n")
		for i := range n {
			fmt.Fprintf(&b, "  v%d: '{{ \"x\"|ljust:4000 }}'\n", i)
		}
		return b.String()
	}
	if err := initWith(e, cfg, "few", app(3), nil); err != nil {
		t.Fatalf("3 variables of 4,000 bytes within a 20,000-byte context: %v", err)
	}
	err := initWith(e, cfg, "many", app(100), nil)
	wantReason(t, err, engine.ReasonTemplateError, "render budget exceeded (opOutput: 20000)")
	if exists(t, e, "many") {
		t.Fatal("the context was written although the init failed")
	}
}

// TestNothingStoredDeeperThanItCanBeRead: a set whose path and value nest
// deeper than the readers accept (1000 levels) fails with InvalidParams and
// leaves the context readable; a deep path within the limit is stored.
func TestNothingStoredDeeperThanItCanBeRead(t *testing.T) {
	e, cfg := newEngine(t)
	if err := initWith(e, cfg, "deep", "cicd-contexts:\n  stage: {}\n", nil, document.Assignment{Path: "state.k", Value: "v"}); err != nil {
		t.Fatal(err)
	}
	set := func(levels int) error {
		_, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpSet, ID: "deep", Config: cfg,
			Sets: []document.Assignment{{Path: "state." + strings.Repeat("a.", levels) + "b", Value: "v"}}})
		return err
	}
	if err := set(900); err != nil {
		t.Fatalf("900 levels: %v", err)
	}
	err := set(1100)
	wantReason(t, err, engine.ReasonInvalidParams, "nested deeper than 1000 levels")
	if e := engine.AsError(err, ""); e.Budget != engine.BudgetDocumentDepth {
		t.Errorf("budget %q, want %s", e.Budget, engine.BudgetDocumentDepth)
	}
	out, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpGet, ID: "deep", Config: cfg,
		Gets: []engine.GetSpec{{Name: "k", Expr: "state.k"}}})
	if err != nil {
		t.Fatalf("the context is unreadable after the refused set: %v", err)
	}
	if v, _ := out.Result("k"); v != "v" {
		t.Fatalf("state.k = %q", v)
	}
}
