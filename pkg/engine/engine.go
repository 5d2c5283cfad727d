// Package engine runs the operations of cicdstatemgr (init, load, set, get,
// generate, handle-event) on cicd context documents kept in the store. The
// CLI and the CustomRun reconciler are thin front ends over it.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// Op names an operation.
type Op string

// The operations.
const (
	OpInit        Op = "init"
	OpLoad        Op = "load"
	OpSet         Op = "set"
	OpGet         Op = "get"
	OpGenerate    Op = "generate"
	OpHandleEvent Op = "handle-event"
	// OpHistory reads the history of a context (history.go).
	OpHistory Op = "history"
)

// OpDecision names, in a context's history, the write of an approval gate's
// decision (RecordDecision); it is not an op a request runs.
const OpDecision = "decision"

// Ops lists every operation, for messages.
var Ops = []Op{OpInit, OpLoad, OpSet, OpGet, OpHandleEvent, OpGenerate, OpHistory}

// ParseOp validates an operation name.
func ParseOp(s string) (Op, error) {
	for _, op := range Ops {
		if string(op) == s {
			return op, nil
		}
	}
	names := make([]string, len(Ops))
	for i, op := range Ops {
		names[i] = string(op)
	}
	return "", Errorf(ReasonInvalidParams, "unknown op %q: use one of %s", s, strings.Join(names, ", "))
}

// Store is what the engine needs of the Redis store.
type Store interface {
	Get(ctx context.Context, id string) (*document.Map, error)
	Put(ctx context.Context, id string, doc *document.Map, opts store.PutOptions) ([]byte, bool, error)
	Update(ctx context.Context, id, opKey string, fn store.UpdateFunc) ([]byte, bool, error)
}

// EventInput is one handle-event call: the handlers of Pipeline's Event run
// against Doc, mutating it in place.
type EventInput struct {
	ID string
	// Namespace of the CustomRun running the op (empty in the CLI).
	Namespace string
	Doc       *document.Map
	Config    *config.Config
	Pipeline  string
	Event     string
	Vars      []tmpl.Var
	// JournalKey scopes the side-effect journal: a handler's HTTP call is
	// made once per JournalKey, however often the operation is retried.
	JournalKey string
	// OnWait is called with the gate key when a handler registered an
	// approval gate (manual-choice with wait: true).
	OnWait func(key string)
}

// EventRunner runs event handlers. It returns a JSON summary of what ran.
type EventRunner interface {
	HandleEvent(ctx context.Context, in EventInput) (handled string, err error)
}

// Engine runs operations.
type Engine struct {
	Store     Store
	Templates *tmpl.Env
	// Handlers runs the event handlers of handle-event; nil means handle-event is unavailable.
	Handlers EventRunner
	// Gates keeps approval gates; the reconciler waits on them.
	Gates *gate.Store
	Log   *slog.Logger
	// EventSlots, when set, bounds the handle-events running at once (its
	// capacity, budgets.eventsInFlight). A handle-event holds a Redis
	// connection (the WATCH of its update) while its handlers call their
	// endpoints, so without a bound a few slow endpoints would take the
	// whole connection pool and every other op would wait for one. One over
	// the bound waits for a slot (in its own goroutine: the reconciler does
	// not wait for it), until its context ends.
	EventSlots chan struct{}
	// ContextChanged, if set, is called with each entry the store wrote in
	// a context's history for an op (after the write committed; never for
	// a replayed op or a write that changed nothing). ref is
	// "<namespace>/<id>". It runs on the op's goroutine: keep it quick.
	ContextChanged func(ctx context.Context, ref string, e history.Entry)
}

// Event names a pipeline's event.
type Event struct {
	Pipeline, Name string
}

// ParseEvent parses "pipeline=event".
func ParseEvent(s string) (*Event, error) {
	parts := strings.Split(s, "=")
	if len(parts) != 2 || strings.TrimSpace(parts[0]) == "" || strings.TrimSpace(parts[1]) == "" {
		return nil, Errorf(ReasonInvalidParams, "event %q is not of the form pipeline=event", s)
	}
	return &Event{Pipeline: strings.TrimSpace(parts[0]), Name: strings.TrimSpace(parts[1])}, nil
}

// GetSpec is one value to read: Name is the result name, Expr the path.
// Format "csv" prints a list as its items joined by commas.
type GetSpec struct {
	Name, Expr, Format string
}

// BaseLoader returns the text of a base file named in an app config.
type BaseLoader func(name string) ([]byte, error)

// Request is one operation.
type Request struct {
	Op     Op
	ID     string
	Config *config.Config
	// Namespace owns the context: the CustomRun's own namespace, or the one
	// its id names (namespace/id); the CLI's --namespace. Event handlers that
	// create Kubernetes objects create them here.
	Namespace string
	// Asker is the namespace of the CustomRun asking; empty for the CLI, an
	// operator tool with the store's credentials. See access.go.
	Asker string

	// init
	CicdContext string
	AppConfig   []byte
	Bases       BaseLoader
	TTL         time.Duration

	// Sets are applied in order before the operation (all operations).
	Sets  []document.Assignment
	Gets  []GetSpec
	Vars  []tmpl.Var
	Event *Event
	// Generator is the path of the generator object.
	Generator string
	// OpKey makes the operation exactly-once: a second request with the same
	// key applies nothing and returns the first outcome. Empty: no record.
	OpKey string
	// Who asks, as the history of the context records it: the CustomRun
	// (namespace, name, PipelineRun, pipeline task) or the CLI's user.
	Who history.Who

	// history: the entries that touch HistoryPath (all when empty), at most
	// HistoryLimit (0: all that are kept).
	HistoryPath  string
	HistoryLimit int
}

// Result is one named output value.
type Result struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Outcome is what an operation produced.
type Outcome struct {
	ID      string   `json:"id"`
	Results []Result `json:"results,omitempty"`
	// Handled is the JSON summary of the event handlers that ran.
	Handled string `json:"handled,omitempty"`
	// Waiting is the key of the approval gate the op opened, if any: the
	// caller waits for a decision at the gate (pkg/gate) before it reports success.
	Waiting string `json:"waiting,omitempty"`
	// Replayed is true when the outcome was recorded by an earlier run.
	Replayed bool `json:"-"`
	// Doc is the document after the operation (nil when replayed, and after a
	// set or get that read only part of it, see Engine.update and get).
	Doc *document.Map `json:"-"`
	// History holds the entries op history read (also in its result).
	History []history.Entry `json:"-"`
}

// Result returns the value of the named result.
func (o *Outcome) Result(name string) (string, bool) {
	for _, r := range o.Results {
		if r.Name == name {
			return r.Value, true
		}
	}
	return "", false
}

// TraceOp, when set, starts the span of one op under the caller's and returns
// the function that ends it with the op's error: the controller sets its
// tracing there at start (pkg/observability.Install), so that the CLI, which
// never sets it, links no tracing library (its start-up is measured against a
// Go hello world: README, Benchmarks). Set it before the first op.
var TraceOp func(ctx context.Context, op Op, namespace, id string) (context.Context, func(error))

// Do runs one operation, in a span under the caller's when TraceOp is set.
func (e *Engine) Do(ctx context.Context, req Request) (*Outcome, error) {
	if TraceOp == nil {
		return e.do(ctx, req)
	}
	ctx, end := TraceOp(ctx, req.Op, req.Namespace, req.ID)
	out, err := e.do(ctx, req)
	end(err)
	return out, err
}

func (e *Engine) do(ctx context.Context, req Request) (*Outcome, error) {
	if strings.TrimSpace(req.ID) == "" {
		return nil, Errorf(ReasonInvalidParams, "an id is required for %s", req.Op)
	}
	if req.Config == nil {
		return nil, Errorf(ReasonInvalidConfig, "no configuration loaded")
	}
	if err := checkAccess(req); err != nil {
		return nil, err
	}
	if err := CheckBudgets(req); err != nil {
		return nil, err
	}
	if req.Event != nil && e.Handlers == nil {
		return nil, Errorf(ReasonInvalidParams, "handle-event is not supported by this build")
	}
	// What an op renders in all (variables, set-values, messages) is bounded
	// like the context it may build (docs/security.md, "Budgets").
	ctx = tmpl.WithOpOutput(ctx, req.budgets().ContextBytes)
	var out *Outcome
	var err error
	switch req.Op {
	case OpInit:
		out, err = e.init(ctx, req)
	case OpLoad, OpSet, OpHandleEvent:
		if req.Op == OpHandleEvent && req.Event == nil {
			return nil, Errorf(ReasonInvalidParams, "handle-event needs an event (pipeline=event)")
		}
		out, err = e.update(ctx, req, nil)
	case OpGet:
		out, err = e.get(ctx, req)
	case OpHistory:
		out, err = e.history(ctx, req)
	case OpGenerate:
		if strings.TrimSpace(req.Generator) == "" {
			return nil, Errorf(ReasonInvalidParams, "generate needs the path of a generator object")
		}
		out, err = e.update(ctx, req, e.generate)
	default:
		_, err = ParseOp(string(req.Op))
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, req.notFound()
	}
	if err != nil {
		return nil, AsError(err, ReasonInvalidParams)
	}
	return out, nil
}

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.Default()
	}
	return e.Log
}

func newJournalKey(opKey string) string {
	if opKey != "" {
		return opKey
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "cli-" + hex.EncodeToString(b[:])
}

// applySets applies assignments in order.
func applySets(doc *document.Map, sets []document.Assignment) error {
	for _, a := range sets {
		if err := document.SetPath(doc, a.Path, a.Value); err != nil {
			return Errorf(ReasonInvalidParams, "set %s: %v", a.Path, err)
		}
	}
	return nil
}

// runEvent runs the event handlers against doc when the request has an event.
// It returns the handled summary and the key of an approval gate it opened.
func (e *Engine) runEvent(ctx context.Context, req Request, doc *document.Map, journalKey string) (string, string, error) {
	if req.Event == nil {
		return "", "", nil
	}
	waiting := ""
	handled, err := e.Handlers.HandleEvent(ctx, EventInput{
		ID: req.ID, Namespace: req.Namespace, Doc: doc, Config: req.Config, Pipeline: req.Event.Pipeline, Event: req.Event.Name,
		Vars: req.Vars, JournalKey: journalKey, OnWait: func(key string) { waiting = key },
	})
	return handled, waiting, err
}

// update is load, set, handle-event and generate: read-modify-write of an
// existing document under the store's optimistic concurrency. extra runs
// after the sets (generate).
//
// A set without event reads and writes only what its assignments touch
// (UpdatePaths), unless the caller may want the whole document back (local
// files configured); Outcome.Doc is nil then.
func (e *Engine) update(ctx context.Context, req Request, extra func(context.Context, Request, *document.Map) error) (*Outcome, error) {
	if req.Event != nil && e.EventSlots != nil {
		select {
		case e.EventSlots <- struct{}{}:
			defer func() { <-e.EventSlots }()
		case <-ctx.Done():
			return nil, &Error{Reason: ReasonEventHandlerFailed, Transient: true, Budget: BudgetEventsInFlight, Err: ctx.Err(),
				Message: fmt.Sprintf("%d handle-events were running for as long as this op could wait (budgets.eventsInFlight); it is retried", cap(e.EventSlots))}
		}
	}
	journalKey := newJournalKey(req.OpKey)
	var final *document.Map
	fn := func(doc *document.Map) (bool, []byte, error) {
		if err := admit(req, doc); err != nil {
			return false, nil, err
		}
		if err := applySets(doc, req.Sets); err != nil {
			return false, nil, err
		}
		// each attempt (a WATCH conflict runs fn again) renders afresh
		actx := tmpl.WithOpOutput(ctx, req.budgets().ContextBytes)
		if extra != nil {
			if err := extra(actx, req, doc); err != nil {
				return false, nil, err
			}
		}
		handled, waiting, err := e.runEvent(actx, req, doc, journalKey)
		if err != nil {
			return false, nil, err
		}
		out := &Outcome{ID: req.ID, Handled: handled, Waiting: waiting}
		if req.Event != nil {
			out.Results = append(out.Results, Result{Name: "handled", Value: handled})
		}
		final = doc
		b, err := json.Marshal(out)
		return true, b, err
	}
	var result []byte
	var replayed bool
	var err error
	ctx = e.recording(ctx, req.ref(), string(req.Op), req.Who, req.Config)
	if ps, ok := e.Store.(pathStore); ok && req.Op == OpSet && req.Event == nil && extra == nil && !wantsDoc(req.Config) {
		paths := make([]string, 0, len(req.Sets)+1)
		for _, a := range req.Sets {
			paths = append(paths, a.Path)
		}
		if req.foreign() {
			paths = append(paths, ShareKey)
		}
		result, replayed, err = ps.UpdatePaths(ctx, req.ref(), req.OpKey, paths, fn)
		final = nil // possibly a part of the document
	} else {
		result, replayed, err = e.Store.Update(ctx, req.ref(), req.OpKey, fn)
	}
	if err != nil {
		return nil, err
	}
	return decodeOutcome(result, replayed, final)
}

// pathStore is a Store that reads and writes parts of documents.
type pathStore interface {
	UpdatePaths(ctx context.Context, id, opKey string, paths []string, fn store.UpdateFunc) ([]byte, bool, error)
	GetPaths(ctx context.Context, id string, paths []string) (*document.Map, error)
}

// wantsDoc says whether the caller of a set may want the whole document in
// Outcome.Doc: the CLI writes it to the local files the configuration names.
func wantsDoc(cfg *config.Config) bool {
	files, err := cfg.LocalFiles(".")
	return err != nil || len(files) > 0
}

func decodeOutcome(result []byte, replayed bool, doc *document.Map) (*Outcome, error) {
	out := &Outcome{}
	if len(result) > 0 {
		if err := json.Unmarshal(result, out); err != nil {
			return nil, fmt.Errorf("stored operation record is unreadable: %w", err)
		}
	}
	out.Replayed = replayed
	out.Doc = doc
	return out, nil
}

// get reads values. With sets it is a read-modify-write; without, a read.
func (e *Engine) get(ctx context.Context, req Request) (*Outcome, error) {
	compute := func(doc *document.Map) (*Outcome, error) {
		out := &Outcome{ID: req.ID, Doc: doc}
		for _, g := range req.Gets {
			v, err := e.getFormatted(ctx, doc, req.Config, g, req.Vars)
			if err != nil {
				return nil, err
			}
			out.Results = append(out.Results, Result{Name: g.Name, Value: v})
		}
		return out, nil
	}
	// A get without sets writes nothing, so it needs no exactly-once record:
	// it reads only what it needs, whatever the size of the context.
	if len(req.Sets) == 0 {
		if out, ok, err := e.getPartial(ctx, req, compute); ok {
			return out, err
		}
		doc, err := e.Store.Get(ctx, req.ref())
		if err != nil {
			return nil, err
		}
		if err := admit(req, doc); err != nil {
			return nil, err
		}
		return compute(doc)
	}
	var final *document.Map
	wctx := e.recording(ctx, req.ref(), string(req.Op), req.Who, req.Config)
	result, replayed, err := e.Store.Update(wctx, req.ref(), req.OpKey, func(doc *document.Map) (bool, []byte, error) {
		if err := admit(req, doc); err != nil {
			return false, nil, err
		}
		if err := applySets(doc, req.Sets); err != nil {
			return false, nil, err
		}
		out, err := compute(doc)
		if err != nil {
			return false, nil, err
		}
		final = doc
		b, err := json.Marshal(out)
		return len(req.Sets) > 0, b, err
	})
	if err != nil {
		return nil, err
	}
	return decodeOutcome(result, replayed, final)
}

// getPartial is get reading only the keys its expressions name (GetPaths),
// when they are plain dotted paths. A string value is rendered as a template
// against the whole document, so it needs the whole document unless it holds
// no template syntax, no tmpl-ctx-vars are given and the macros in front of
// every template only define macros: ok is false then (and the caller reads
// the whole document). Outcome.Doc is nil.
func (e *Engine) getPartial(ctx context.Context, req Request, compute func(*document.Map) (*Outcome, error)) (out *Outcome, ok bool, err error) {
	ps, isPathStore := e.Store.(pathStore)
	if !isPathStore || len(req.Gets) == 0 {
		return nil, false, nil
	}
	paths := make([]string, 0, len(req.Gets)+1)
	for _, g := range req.Gets {
		p := strings.TrimSpace(g.Expr)
		if p == "" || strings.ContainsAny(p, "$*[") || strings.Contains(p, "..") {
			return nil, false, nil
		}
		paths = append(paths, p)
	}
	paths = append(paths, tmpl.MacrosKey)
	if req.foreign() {
		paths = append(paths, ShareKey)
	}
	doc, err := ps.GetPaths(ctx, req.ref(), paths)
	if err != nil {
		return nil, true, err
	}
	if err := admit(req, doc); err != nil {
		return nil, true, err
	}
	for _, g := range req.Gets {
		v, _, _ := document.Lookup(doc, g.Expr)
		if s, isStr := v.(string); isStr && s != "" && (len(req.Vars) > 0 || hasTemplateSyntax(s) || !macrosOnly(doc)) {
			return nil, false, nil
		}
	}
	out, err = compute(doc)
	if out != nil {
		out.Doc = nil
	}
	return out, true, err
}

func hasTemplateSyntax(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#")
}

// macrosOnly says whether the macro text of doc (put in front of every
// template) only defines macros, so that it renders the same whatever the
// rest of the document holds.
func macrosOnly(doc *document.Map) bool {
	m, _ := doc.GetMap(tmpl.MacrosKey)
	s, _ := m.GetString("all")
	depth := 0
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 || i == len(s)-1 {
			return true
		}
		switch s[i+1] {
		case '#':
			end := strings.Index(s[i+2:], "#}")
			if end < 0 {
				return false
			}
			s = s[i+2+end+2:]
		case '{':
			end := strings.Index(s[i+2:], "}}")
			if depth == 0 || end < 0 {
				return false
			}
			s = s[i+2+end+2:]
		case '%':
			end := strings.Index(s[i+2:], "%}")
			if end < 0 {
				return false
			}
			tag := strings.Fields(strings.Trim(s[i+2:i+2+end], "-+ \t\r\n"))
			s = s[i+2+end+2:]
			switch {
			case len(tag) > 0 && tag[0] == "macro":
				depth++
			case len(tag) > 0 && tag[0] == "endmacro" && depth > 0:
				depth--
			case len(tag) > 0 && tag[0] == "raw" && depth > 0:
				end := strings.Index(s, "endraw")
				if end < 0 {
					return false
				}
				s = s[end:]
			case depth == 0:
				return false
			}
		default:
			s = s[i+1:]
		}
	}
}

// GetValue evaluates one get expression the original's way (with the
// output formats of docs/compatibility.md): a string is rendered as a template, a
// number or boolean prints as JSON, maps and lists as JSON with Python's
// separators, a missing or null value as "".
func (e *Engine) GetValue(ctx context.Context, doc *document.Map, cfg *config.Config, expr string, vars []tmpl.Var) (string, error) {
	p, err := document.ParsePath(expr)
	if err != nil {
		return "", Errorf(ReasonInvalidParams, "get %q: %v", expr, err)
	}
	v, ok := p.Value(doc)
	if !ok || v == nil {
		return "", nil
	}
	s, isString := v.(string)
	if !isString {
		return FormatValue(v), nil
	}
	if s == "" {
		return "", nil
	}
	tctx, err := tmpl.Context(doc, cfg.Data, vars)
	if err != nil {
		return "", Errorf(ReasonInvalidParams, "%v", err)
	}
	out, err := e.Templates.RenderContext(ctx, s, tctx)
	if err != nil {
		return "", AsError(fmt.Errorf("get %s: %w", expr, err), ReasonTemplateError)
	}
	return out, nil
}

func (e *Engine) getFormatted(ctx context.Context, doc *document.Map, cfg *config.Config, g GetSpec, vars []tmpl.Var) (string, error) {
	if g.Format == "csv" {
		if v, ok, err := document.Lookup(doc, g.Expr); err == nil && ok {
			if l, isList := v.([]any); isList {
				items := make([]string, len(l))
				for i, it := range l {
					items[i] = FormatValue(it)
				}
				return strings.Join(items, ","), nil
			}
		}
	}
	return e.GetValue(ctx, doc, cfg, g.Expr, vars)
}

// FormatValue prints a non-string value for --get and results.
func FormatValue(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		if t {
			return "true"
		}
		return "false"
	default:
		return document.MustJSON(t, document.PythonJSON)
	}
}

// RecordDecision writes the decision of an approval gate into the state,
// once per opKey: state.choices.<pipeline>.<event> = {choice, chosenBy,
// [userId,] via, at}. Its history entry (op "decision") names the approver
// (the verified Slack user id, the Kubernetes user of an ApprovalGate, the
// CLI's --by) and how they decided; its values are redacted with the
// configuration of ctx (WithConfig).
func (e *Engine) RecordDecision(ctx context.Context, ref, opKey string, p gate.Gate, d gate.Decision) error {
	ns, _, _ := strings.Cut(ref, "/")
	who := history.Who{Namespace: ns, Approver: d.ChosenBy, Via: d.Via}
	if d.UserID != "" {
		who.Approver = d.UserID
	}
	ctx = e.recording(ctx, ref, OpDecision, who, configFrom(ctx))
	_, _, err := e.Store.Update(ctx, ref, opKey, func(doc *document.Map) (bool, []byte, error) {
		rec := document.NewMap()
		rec.Set("choice", d.Choice)
		rec.Set("chosenBy", d.ChosenBy)
		if d.UserID != "" {
			rec.Set("userId", d.UserID)
		}
		rec.Set("via", d.Via)
		rec.Set("at", d.At.UTC().Format(time.RFC3339))
		if d.Outcome != "" {
			rec.Set("outcome", d.Outcome)
		}
		if d.Reason != "" {
			rec.Set("reason", d.Reason)
		}
		path := fmt.Sprintf("state.choices.%s.%s", pathSegment(p.Pipeline), pathSegment(p.Event))
		return true, nil, document.SetPath(doc, path, rec)
	})
	return err
}

// pathSegment keeps a name usable as one path segment.
func pathSegment(s string) string {
	return strings.NewReplacer(".", "_", "[]", "", "{}", "").Replace(s)
}
