// Package handlers runs the event handlers of a pipeline's event (notify,
// manual-choice, respond, trigger-pipeline, set-values) against a document,
// as the original's on_event_handler does, with the deliberate differences
// listed in docs/compatibility.md:
//
//   - errors fail loudly: an unknown pipeline or event, an unknown handler
//     type, a template that does not render, a missing required setting or a
//     non-2xx reply (after retries) fail the operation with an engine.Error
//     (reasons UnknownEvent, InvalidAppConfig, TemplateError,
//     EventHandlerFailed). A handler block with `optional: true` that fails
//     is reported as "failed" in the summary and the operation goes on;
//   - HTTP goes through pkg/httpclient (timeouts, bounded retries, UTF-8,
//     non-JSON replies tolerated and captured as a string);
//   - secrets never reach messages, logs or captured values: every secret
//     value (plain and base64) is replaced by [REDACTED] in replies before
//     they are captured or journaled, and in error messages; trigger.headers,
//     the one template that sees secretData, is rendered in the controller
//     from the admin's text only (configData and secretData, no macros, no
//     document);
//   - a respond url (written by a pipeline author) reaches only the hosts of
//     config.HTTPPolicy (cicdstatemgr.http.allowedHosts plus the hosts of
//     slack.url and trigger.url), and gets the Slack token only on the Slack
//     host (docs/security.md);
//   - manual-choice choice-generators read the in-memory document (the
//     original re-read the stored one, bug 10).
//
// # Exactly-once side effects
//
// Every HTTP side effect (one per handler block) has a journal key
// "<JournalKey>/<pipeline>/<event>/<handler type>/<block>" in the store's op
// records (kept for the store's DoneTTL):
//
//  1. before sending, an "intent" record with a random nonce is written with
//     SET NX. If a record already exists, nothing is sent: an "outcome"
//     record is replayed (its reply is captured again, so a re-run of the
//     operation after a write conflict or a repeated reconcile captures the
//     same values); an intent of someone else is reported as status "unknown"
//     and its capture is skipped;
//  2. after a 2xx reply the outcome (status and body) replaces the intent;
//  3. after a failure (no reply, non-2xx, refused) the intent is deleted, so
//     that a retry of the operation sends again.
//
// The window: a process that dies (or loses Redis) after sending and before
// step 2 leaves an intent without an outcome. The request may or may not have
// reached the endpoint; it is never sent again for that JournalKey, and the
// handler shows up as "unknown" (at most once, never twice). Within one
// attempt chain the HTTP client retries timeouts and 5xx replies, so an
// endpoint that processed a request but failed to answer in time may see it
// twice: endpoints are not idempotent, and this is the usual HTTP trade-off.
//
// An empty JournalKey (or a Runner without a Store) sends without a journal.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// Handler types.
const (
	TypeNotify          = "notify"
	TypeManualChoice    = "manual-choice"
	TypeRespond         = "respond"
	TypeTriggerPipeline = "trigger-pipeline"
	TypeSetValues       = "set-values"
)

// Types lists the handler types, for messages.
var Types = []string{TypeTriggerPipeline, TypeManualChoice, TypeNotify, TypeRespond, TypeSetValues}

// Statuses of a handled entry.
const (
	StatusSent     = "sent"     // the HTTP request got a 2xx reply
	StatusApplied  = "applied"  // set-values ran (no HTTP)
	StatusSkipped  = "skipped"  // `if` rendered blank, or respond had no message or url
	StatusDisabled = "disabled" // the handler type has enabled: false
	StatusFailed   = "failed"   // an optional block failed
	StatusReplayed = "replayed" // the journal had the reply of an earlier run: not sent again
	StatusUnknown  = "unknown"  // an earlier run may have sent it but recorded no reply: not sent again
)

// Runner runs event handlers. It is safe for concurrent use.
type Runner struct {
	// Store keeps the side-effect journal; nil: no journal.
	Store     *store.Store
	Templates *tmpl.Env
	Log       *slog.Logger
	// HTTP sends every request; nil: httpclient defaults.
	HTTP *httpclient.Client
	// Trigger performs the side effect of a trigger-pipeline block; nil:
	// PostTrigger (POST the payload to trigger.url, as the original). This is
	// the extension point for other ways to start a pipeline (e.g. creating
	// the PipelineRun directly): inspect call.Block and fall back to
	// PostTrigger. It runs under the journal like every HTTP call: at most
	// once per journal key, its Response replayed on re-runs.
	Trigger func(ctx context.Context, call *TriggerCall) (*httpclient.Response, error)
	// Gates keeps the approval gates of manual-choice blocks with
	// `wait: true`; nil: such blocks fail with a clear error.
	Gates *gate.Store
	// DocumentInHeaders renders trigger.headers with the document and the
	// macros, as the original did: for the CLI only, whose process holds
	// secrets.yaml itself and whose user writes the app config. The
	// controller never sets it (docs/security.md).
	DocumentInHeaders bool
}

// WithDocumentInHeaders sets Runner.DocumentInHeaders (the CLI).
func WithDocumentInHeaders() Option { return func(r *Runner) { r.DocumentInHeaders = true } }

// Option configures a Runner.
type Option func(*Runner)

// WithHTTPClient sets the HTTP client.
func WithHTTPClient(c *httpclient.Client) Option { return func(r *Runner) { r.HTTP = c } }

// WithTrigger sets the trigger-pipeline side effect (see Runner.Trigger).
func WithTrigger(fn func(ctx context.Context, call *TriggerCall) (*httpclient.Response, error)) Option {
	return func(r *Runner) { r.Trigger = fn }
}

// WithGates sets the store of approval gates (manual-choice `wait: true`).
func WithGates(c *gate.Store) Option { return func(r *Runner) { r.Gates = c } }

// NewRunner returns a Runner.
func NewRunner(st *store.Store, r *tmpl.Env, log *slog.Logger, opts ...Option) *Runner {
	if log == nil {
		log = slog.Default()
	}
	run := &Runner{Store: st, Templates: r, Log: log}
	for _, o := range opts {
		o(run)
	}
	return run
}

var _ engine.EventRunner = (*Runner)(nil)

func (r *Runner) client() *httpclient.Client {
	if r.HTTP == nil {
		return httpclient.New()
	}
	return r.HTTP
}

func (r *Runner) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// Entry is one element of the handled summary.
type Entry struct {
	Type, Name, Status string
	Code               int
	Error              string
}

// Summary renders entries as the handled result: a compact JSON list of
// {"type","name","status"[,"code"][,"error"]}.
func Summary(entries []*Entry) string {
	list := make([]any, 0, len(entries))
	for _, e := range entries {
		m := document.NewMap()
		m.Set("type", e.Type)
		m.Set("name", e.Name)
		m.Set("status", e.Status)
		if e.Code != 0 {
			m.Set("code", e.Code)
		}
		if e.Error != "" {
			m.Set("error", e.Error)
		}
		list = append(list, m)
	}
	return document.MustJSON(list, document.JSONStyle{})
}

// handlerSpec describes one handler type.
type handlerSpec struct {
	// marker makes the handler config a single block named "default";
	// otherwise each key is a named block.
	marker string
	// ctxKey is the template context key of the block (pongo2 needs an
	// identifier, so set-values is setValues).
	ctxKey string
	run    func(r *Runner, ctx context.Context, b *blockRun) error
}

var specs map[string]handlerSpec

func init() {
	specs = map[string]handlerSpec{
		TypeNotify:          {marker: "message", ctxKey: "notify", run: (*Runner).notify},
		TypeManualChoice:    {marker: "title", ctxKey: "manualChoice", run: (*Runner).manualChoice},
		TypeRespond:         {marker: "message", ctxKey: "respond", run: (*Runner).respond},
		TypeTriggerPipeline: {marker: "name", ctxKey: "triggerPipeline", run: (*Runner).triggerPipeline},
		TypeSetValues:       {marker: "set", ctxKey: "setValues", run: (*Runner).setValues},
	}
}

// blockRun is one handler block being run.
type blockRun struct {
	// ctx is the op's context: renders stop when it ends.
	ctx      context.Context
	in       engine.EventInput
	typ      string
	name     string
	spec     handlerSpec
	block    *document.Map
	entry    *Entry
	redact   func(string) string
	optional bool
}

func (b *blockRun) cfg() *config.Config { return b.in.Config }

// journalKey is the journal key of the block's side effect.
func (b *blockRun) journalKey() string {
	if b.in.JournalKey == "" {
		return ""
	}
	return journalKey(b.in.JournalKey, b.in.Pipeline, b.in.Event, b.typ, b.name)
}

type namedBlock struct {
	name  string
	block *document.Map
}

// HandleEvent implements engine.EventRunner: it runs the handlers of
// in.Pipeline's in.Event in YAML order against in.Doc (mutated in place) and
// returns the handled summary.
func (r *Runner) HandleEvent(ctx context.Context, in engine.EventInput) (string, error) {
	if in.Doc == nil || in.Config == nil {
		return "", engine.Errorf(engine.ReasonInvalidParams, "handle-event needs a document and a configuration")
	}
	handlers, err := findHandlers(in.Doc, in.Pipeline, in.Event)
	if err != nil {
		return "", err
	}
	redact := newRedactor(in.Config)
	where := fmt.Sprintf("pipelines.%s.event-handlers.%s", in.Pipeline, in.Event)
	entries := []*Entry{}
	for _, typ := range handlers.Keys() {
		raw, _ := handlers.Get(typ)
		spec, ok := specs[typ]
		if !ok {
			return "", engine.Errorf(engine.ReasonInvalidAppConfig, "%s: unknown handler type %q (known types: %s)",
				where, typ, strings.Join(Types, ", "))
		}
		if raw == nil {
			continue
		}
		hcfg, ok := raw.(*document.Map)
		if !ok {
			return "", engine.Errorf(engine.ReasonInvalidAppConfig, "%s.%s must be a map, not a %s", where, typ, document.TypeName(raw))
		}
		blocks, splitErr := splitBlocks(hcfg, spec.marker)
		if v, _ := hcfg.Get("enabled"); v == false {
			r.log().Info(typ+" enabled:False skipping....", "pipeline", in.Pipeline, "event", in.Event)
			if splitErr != nil || len(blocks) == 0 {
				blocks = []namedBlock{{name: "default"}}
			}
			for _, b := range blocks {
				entries = append(entries, &Entry{Type: typ, Name: b.name, Status: StatusDisabled})
			}
			continue
		}
		if splitErr != nil {
			return "", engine.Errorf(engine.ReasonInvalidAppConfig, "%s.%s: %v", where, typ, splitErr)
		}
		handlerOptional := isTrue(hcfg, "optional")
		for _, nb := range blocks {
			e := &Entry{Type: typ, Name: nb.name}
			b := &blockRun{ctx: ctx, in: in, typ: typ, name: nb.name, spec: spec, block: nb.block, entry: e, redact: redact,
				optional: handlerOptional || isTrue(nb.block, "optional")}
			if err := spec.run(r, ctx, b); err != nil {
				ee := r.wrapError(b, err)
				if !b.optional || isStoreError(err) || ctx.Err() != nil {
					return "", ee
				}
				e.Status, e.Error = StatusFailed, ee.Message
				r.log().Warn("optional event handler failed", "type", typ, "name", nb.name, "error", ee.Message)
			}
			entries = append(entries, e)
		}
	}
	return Summary(entries), nil
}

// findHandlers returns pipelines.<P>.event-handlers.<E> of doc.
func findHandlers(doc *document.Map, pipeline, event string) (*document.Map, error) {
	pipelines, ok := doc.GetMap("pipelines")
	if !ok || pipelines.Len() == 0 {
		return nil, engine.Errorf(engine.ReasonUnknownEvent, "pipeline %q not found: the document has no pipelines", pipeline)
	}
	pv, ok := pipelines.Get(pipeline)
	p, isMap := pv.(*document.Map)
	if !ok || !isMap {
		return nil, engine.Errorf(engine.ReasonUnknownEvent, "pipeline %q not found (pipelines: %s)", pipeline, list(pipelines.Keys()))
	}
	ehv, ok := p.Get("event-handlers")
	eh, isMap := ehv.(*document.Map)
	if !ok || !isMap || eh.Len() == 0 {
		return nil, engine.Errorf(engine.ReasonUnknownEvent, "pipeline %q has no event-handlers", pipeline)
	}
	hv, ok := eh.Get(event)
	if !ok {
		return nil, engine.Errorf(engine.ReasonUnknownEvent, "event %q not found in pipeline %q (events: %s)", event, pipeline, list(eh.Keys()))
	}
	switch h := hv.(type) {
	case nil:
		return document.NewMap(), nil
	case *document.Map:
		return h, nil
	default:
		return nil, engine.Errorf(engine.ReasonInvalidAppConfig, "pipelines.%s.event-handlers.%s must be a map of handler type to config, not a %s",
			pipeline, event, document.TypeName(hv))
	}
}

func list(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}

// splitBlocks applies the named sub-block rule: a config holding the marker
// key is one block "default"; otherwise every map-valued key is a named
// block, in order (scalar enabled/optional keys are settings, not blocks).
func splitBlocks(hcfg *document.Map, marker string) ([]namedBlock, error) {
	if hcfg.Has(marker) {
		return []namedBlock{{name: "default", block: hcfg}}, nil
	}
	var out []namedBlock
	for _, k := range hcfg.Keys() {
		v, _ := hcfg.Get(k)
		m, ok := v.(*document.Map)
		if !ok {
			if k == "enabled" || k == "optional" {
				continue
			}
			return nil, fmt.Errorf("%q is neither the handler's %q key nor a named block (a map): it is a %s", k, marker, document.TypeName(v))
		}
		out = append(out, namedBlock{name: k, block: m})
	}
	return out, nil
}

func isTrue(m *document.Map, key string) bool {
	v, _ := m.Get(key)
	return v == true
}

func isStoreError(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrAuth) || errors.Is(err, store.ErrInvalidKey)
}

// wrapError gives a handler error its reason and a message naming the
// handler, with every secret redacted.
func (r *Runner) wrapError(b *blockRun, err error) *engine.Error {
	e := engine.AsError(err, engine.ReasonEventHandlerFailed)
	transient, budget := e.Transient, e.Budget
	var he *httpclient.Error
	if errors.As(err, &he) {
		e = &engine.Error{Reason: engine.ReasonEventHandlerFailed, Message: he.Error()}
		transient = he.Transient()
		if errors.Is(err, httpclient.ErrHostBusy) {
			budget = engine.BudgetCallsPerHost
		}
	}
	msg := fmt.Sprintf("%s handler %q of %s=%s: %s", b.typ, b.name, b.in.Pipeline, b.in.Event, e.Message)
	return &engine.Error{Reason: e.Reason, Message: b.redact(msg), Transient: transient, Budget: budget, Err: err}
}

// failf is a handler failure with a reason.
func failf(reason, format string, args ...any) *engine.Error {
	return engine.Errorf(reason, format, args...)
}
