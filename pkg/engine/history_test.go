package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
)

const historySecret = "pa55-w0rd-xyz"

// changed collects what Engine.ContextChanged is told.
type changed struct {
	mu   sync.Mutex
	refs []string
	ops  []string
}

func (c *changed) hook(_ context.Context, ref string, e history.Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refs = append(c.refs, ref)
	c.ops = append(c.ops, e.Op)
}

func historyConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1}\n"),
		[]byte("cicdstatemgr:\n  datasources:\n    redis: {password: "+historySecret+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func readHistory(t *testing.T, e *engine.Engine, req engine.Request) []history.Entry {
	t.Helper()
	req.Op = engine.OpHistory
	out, err := e.Do(context.Background(), req)
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	text, ok := out.Result(engine.ResultHistory)
	var entries []history.Entry
	if !ok || json.Unmarshal([]byte(text), &entries) != nil || len(entries) != len(out.History) {
		t.Fatalf("history result %q (%v) does not hold the %d entries read", text, ok, len(out.History))
	}
	return entries
}

// TestHistoryRecordsEveryWrite: init, set, handle-event-free updates and a
// gate's decision each record one entry with who asked and what changed;
// a read and a replayed op record none; ContextChanged hears each entry.
func TestHistoryRecordsEveryWrite(t *testing.T) {
	e, _ := newEngine(t)
	cfg := historyConfig(t)
	var seen changed
	e.ContextChanged = seen.hook
	ctx := context.Background()
	run := history.Who{Namespace: "ns", CustomRun: "init-run", PipelineRun: "build-1", PipelineTask: "init"}
	if _, err := e.Do(ctx, engine.Request{Namespace: "ns", Asker: "ns", Op: engine.OpInit, ID: "app", Config: cfg, AppConfig: []byte(appYAML), Bases: bases,
		Sets: []document.Assignment{{Path: "state.version", Value: "1"}}, Who: run, OpKey: "uid-1"}); err != nil {
		t.Fatal(err)
	}
	set := func(who history.Who, opKey string, sets ...document.Assignment) {
		t.Helper()
		if _, err := e.Do(ctx, engine.Request{Namespace: "ns", Asker: "ns", Op: engine.OpSet, ID: "app", Config: cfg, Sets: sets, Who: who, OpKey: opKey}); err != nil {
			t.Fatal(err)
		}
	}
	run2 := history.Who{Namespace: "ns", CustomRun: "set-run", PipelineRun: "deploy-1", PipelineTask: "bump"}
	set(run2, "uid-2", document.Assignment{Path: "state.version", Value: "2"})
	set(run2, "uid-2", document.Assignment{Path: "state.version", Value: "2"}) // replayed
	cli := history.Who{User: "alice", Via: "cli"}
	set(cli, "", document.Assignment{Path: "state.token", Value: "token=" + historySecret})
	if _, err := e.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpGet, ID: "app", Config: cfg, Gets: []engine.GetSpec{{Name: "v", Expr: "state.version"}}}); err != nil {
		t.Fatal(err)
	}
	d := gate.Decision{Choice: "approve", ChosenBy: "U123", UserID: "U123", Via: "slack", At: time.Now(), Reason: "pasted " + historySecret}
	if err := e.RecordDecision(engine.WithConfig(ctx, cfg), "ns/app", "uid-3/choice", gate.Gate{Pipeline: "build", Event: "approval"}, d); err != nil {
		t.Fatal(err)
	}

	h := readHistory(t, e, engine.Request{Namespace: "ns", Asker: "ns", ID: "app", Config: cfg})
	var ops []string
	for _, en := range h {
		ops = append(ops, en.Op)
	}
	if strings.Join(ops, ",") != "decision,set,set,init" {
		t.Fatalf("ops newest first: %v", ops)
	}
	if h[0].Who != (history.Who{Namespace: "ns", Approver: "U123", Via: "slack"}) || h[0].Changes[0].Path != "state.choices" {
		t.Fatalf("decision entry: %+v", h[0])
	}
	if c := h[0].Changes[0].New; strings.Contains(c, historySecret) || !strings.Contains(c, `"reason":"pasted [REDACTED]"`) {
		t.Fatalf("the decision's reason is not redacted: %s", c)
	}
	if h[1].Who != cli || h[1].Changes[0] != (history.Change{Path: "state.token", New: `"token=[REDACTED]"`}) {
		t.Fatalf("CLI set entry: %+v", h[1])
	}
	if h[2].Who != run2 || fmt.Sprint(h[2].Changes) != fmt.Sprint([]history.Change{{Path: "state.version", Old: `"1"`, New: `"2"`}}) {
		t.Fatalf("set entry: %+v", h[2])
	}
	if h[3].Who != run || len(h[3].Changes) < 5 {
		t.Fatalf("init entry: %+v", h[3])
	}
	if c, ok := findChange(h[3], "state.version"); !ok || c.New != `"1"` {
		t.Fatalf("init entry lacks state.version: %+v", h[3].Changes)
	}
	if strings.Join(seen.ops, ",") != "init,set,set,decision" || seen.refs[0] != "ns/app" {
		t.Fatalf("ContextChanged heard %v on %v", seen.ops, seen.refs)
	}

	// Filters: the path (and what is above or below it), the limit.
	byPath := readHistory(t, e, engine.Request{Namespace: "ns", ID: "app", Config: cfg, HistoryPath: "state.version"})
	if len(byPath) != 2 || byPath[0].Op != "set" || byPath[1].Op != "init" {
		t.Fatalf("history of state.version: %+v", byPath)
	}
	if h := readHistory(t, e, engine.Request{Namespace: "ns", ID: "app", Config: cfg, HistoryPath: "state.choices.build.approval.choice"}); len(h) != 1 || h[0].Op != "decision" {
		t.Fatalf("history below a changed path: %+v", h)
	}
	if h := readHistory(t, e, engine.Request{Namespace: "ns", ID: "app", Config: cfg, HistoryLimit: 1}); len(h) != 1 || h[0].Op != "decision" {
		t.Fatalf("history limit 1: %+v", h)
	}
	if h := readHistory(t, e, engine.Request{Namespace: "ns", ID: "app", Config: cfg, HistoryPath: "state.nothing"}); len(h) != 0 {
		t.Fatalf("history of an unchanged path: %+v", h)
	}
}

func findChange(e history.Entry, path string) (history.Change, bool) {
	for _, c := range e.Changes {
		if c.Path == path {
			return c, true
		}
	}
	return history.Change{}, false
}

// TestHistoryAccess: op history follows get's rule: the owner reads, a
// namespace the context is shared with reads, any other is told the context
// does not exist; bad params are InvalidParams naming what is wrong.
func TestHistoryAccess(t *testing.T) {
	e, cfg := newEngine(t)
	initShared(t, e, cfg, "app")
	do := func(req engine.Request) error {
		req.Op, req.Config, req.Namespace = engine.OpHistory, cfg, "team-a"
		if req.ID == "" {
			req.ID = "app"
		}
		_, err := e.Do(context.Background(), req)
		return err
	}
	for _, asker := range []string{"team-a", "team-r", "team-w", ""} {
		if err := do(engine.Request{Asker: asker}); err != nil {
			t.Errorf("%q reads the history: %v", asker, err)
		}
	}
	err := do(engine.Request{Asker: "team-x"})
	if engine.ReasonOf(err, "") != engine.ReasonContextNotFound || strings.Contains(err.Error(), "share") {
		t.Fatalf("team-x: %v", err)
	}
	if err := do(engine.Request{Asker: "team-a", ID: "missing"}); err == nil {
		t.Fatal("a missing context has a history")
	}
	for name, c := range map[string]struct {
		req  engine.Request
		want string
	}{
		"negative limit": {engine.Request{HistoryLimit: -1}, "history limit -1"},
		"bad path":       {engine.Request{HistoryPath: "state..x"}, "not a dotted path"},
		"long path":      {engine.Request{HistoryPath: strings.Repeat("a", 2000)}, "at most 1024"},
		"with sets":      {engine.Request{Sets: []document.Assignment{{Path: "state.x", Value: "1"}}}, "takes no sets"},
	} {
		err := do(c.req)
		if engine.ReasonOf(err, "") != engine.ReasonInvalidParams || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want InvalidParams with %q", name, err, c.want)
		}
	}
}

// TestFitHistory: the result keeps the newest entries that fit; an entry
// alone over the bound keeps its first changes and counts the others.
func TestFitHistory(t *testing.T) {
	entry := func(n int) history.Entry {
		e := history.Entry{Op: "set", Time: time.Unix(0, 0).UTC()}
		for i := 0; i < n; i++ {
			e.Changes = append(e.Changes, history.Change{Path: fmt.Sprintf("state.k%d", i), New: strings.Repeat("v", 50)})
		}
		return e
	}
	kept, text, err := engine.FitHistory([]history.Entry{entry(1), entry(1), entry(1)}, 300)
	if err != nil || len(kept) != 2 || len(text) > 300 {
		t.Fatalf("kept %d in %d bytes: %v", len(kept), len(text), err)
	}
	kept, text, err = engine.FitHistory([]history.Entry{entry(10), entry(1)}, 400)
	if err != nil || len(kept) != 1 || len(text) > 400 || kept[0].More == 0 || len(kept[0].Changes)+kept[0].More != 10 {
		t.Fatalf("one large entry: %+v in %d bytes: %v", kept, len(text), err)
	}
	if kept, text, err := engine.FitHistory(nil, 10); err != nil || len(kept) != 0 || text != "[]" {
		t.Fatalf("none: %q %v", text, err)
	}
}
