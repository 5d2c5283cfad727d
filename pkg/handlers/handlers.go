package handlers

import (
	"context"
	"fmt"
	"strings"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
)

// blockContext builds a block's template context: the template context (tmpl.Context) plus a
// copy of the block under the handler's key. own is that copy, which the
// handler fills with rendered values for the body template.
func (r *Runner) blockContext(b *blockRun) (tctx, own *document.Map, err error) {
	tctx, err = tmpl.Context(b.in.Doc, b.cfg().Data, b.in.Vars)
	if err != nil {
		return nil, nil, failf(engine.ReasonInvalidParams, "%v", err)
	}
	own = document.CloneMap(b.block)
	tctx.Set(b.spec.ctxKey, own)
	return tctx, own, nil
}

// open is how every handler starts: it builds the block's template context
// (blockContext) and evaluates the block's `if` (proceed, strip as there). ok is
// false when the handler must stop at once: err is then the failure, or nil
// when the block is skipped.
func (r *Runner) open(b *blockRun, strip bool) (tctx, own *document.Map, ok bool, err error) {
	tctx, own, err = r.blockContext(b)
	if err != nil {
		return nil, nil, false, err
	}
	if !r.proceed(b, tctx, strip) {
		return nil, nil, false, nil
	}
	return tctx, own, true, nil
}

// proceed evaluates the block's `if`: a blank result (or one that does not
// render, the original's blankOnError) skips the block.
func (r *Runner) proceed(b *blockRun, tctx *document.Map, strip bool) bool {
	src, ok := b.block.Get("if")
	if !ok {
		return true
	}
	var pass bool
	switch t := src.(type) {
	case nil:
	case string:
		p, err := r.Templates.ConditionContext(b.ctx, t, tctx, strip)
		if err != nil {
			r.log().Info("event handler condition did not render: counted as blank", "type", b.typ, "name", b.name, "error", b.redact(err.Error()))
		}
		pass = p
	default:
		s, err := r.Templates.RenderAnyContext(b.ctx, t, tctx)
		if strip {
			s = strings.TrimSpace(s)
		}
		pass = err == nil && s != ""
	}
	if !pass {
		b.entry.Status = StatusSkipped
		r.log().Info("event handler skipped: its condition is blank", "type", b.typ, "name", b.name)
	}
	return pass
}

// render renders a config value; a failure is a TemplateError naming what.
func (r *Runner) render(ctx context.Context, what string, v any, tctx *document.Map) (string, error) {
	s, err := r.Templates.RenderAnyContext(ctx, v, tctx)
	if err != nil {
		return "", &engine.Error{Reason: engine.ReasonTemplateError, Message: what + ": " + err.Error(), Err: err}
	}
	return s, nil
}

// bodyTemplate renders config templates.<name>.
func (r *Runner) bodyTemplate(b *blockRun, name string, tctx *document.Map) (string, error) {
	v, _ := b.cfg().MapAt("templates").Get(name)
	src, ok := v.(string)
	if !ok || strings.TrimSpace(src) == "" {
		return "", failf(engine.ReasonEventHandlerFailed, "config.yaml has no templates.%s (the body template of %s)", name, b.typ)
	}
	return r.render(b.ctx, "templates."+name, src, tctx)
}

// postToSlack renders the body template named template and POSTs it to
// slack.url, once per journal key (a nil reply without an error: nothing to
// capture, e.g. an earlier run's outcome is unknown).
func (r *Runner) postToSlack(ctx context.Context, b *blockRun, template string, tctx *document.Map) (*httpclient.Response, error) {
	body, err := r.bodyTemplate(b, template, tctx)
	if err != nil {
		return nil, err
	}
	url, headers, err := slackTarget(b, true)
	if err != nil {
		return nil, err
	}
	return r.send(ctx, b, httpclient.Request{URL: url, Headers: headers, Body: []byte(body)})
}

// slackTarget returns slack.url and the headers of notify, manual-choice and
// respond (bearer slack.token).
func slackTarget(b *blockRun, needURL bool) (string, []httpclient.Header, error) {
	url := strings.TrimSpace(b.cfg().StringAt("slack.url"))
	if needURL && url == "" {
		return "", nil, failf(engine.ReasonEventHandlerFailed, "config.yaml has no slack.url (where %s posts)", b.typ)
	}
	token := b.cfg().SecretStringAt("slack.token")
	if token == "" {
		return "", nil, failf(engine.ReasonEventHandlerFailed, "secrets.yaml has no slack.token (the bearer token of %s)", b.typ)
	}
	return url, []httpclient.Header{
		{Name: "Content-Type", Value: "application/json; charset=UTF-8"},
		{Name: "Accept", Value: "*/*"},
		{Name: "Authorization", Value: "Bearer " + token},
		{Name: "Cache-Control", Value: "no-cache"},
	}, nil
}

// send posts req under the journal.
func (r *Runner) send(ctx context.Context, b *blockRun, req httpclient.Request) (*httpclient.Response, error) {
	r.log().Debug("event handler request", "type", b.typ, "name", b.name, "host", httpclient.Host(req.URL), "body", b.redact(string(req.Body)))
	return r.journaled(ctx, b, func(ctx context.Context) (*httpclient.Response, error) {
		return r.client().Do(ctx, req)
	})
}

// journaled runs a side effect at most once per journal key and records the
// outcome in the block's entry. A nil reply without error means "unknown".
func (r *Runner) journaled(ctx context.Context, b *blockRun, fn func(context.Context) (*httpclient.Response, error)) (*httpclient.Response, error) {
	resp, status, err := r.effect(ctx, b.journalKey(), func(ctx context.Context) (*httpclient.Response, error) {
		resp, err := fn(ctx)
		if resp != nil {
			resp.Body = b.redact(resp.Body)
		}
		return resp, err
	})
	b.entry.Status = status
	if resp != nil {
		b.entry.Code = resp.Status
	}
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, nil
	}
	r.log().Info("event handler done", "type", b.typ, "name", b.name, "status", status, "code", resp.Status)
	r.log().Debug("event handler reply", "type", b.typ, "name", b.name, "body", resp.Body)
	return resp, nil
}

// notify: render message, render templates.notify, POST to slack.url,
// capture.
func (r *Runner) notify(ctx context.Context, b *blockRun) error {
	tctx, own, ok, err := r.open(b, false)
	if !ok {
		return err
	}
	src, ok := b.block.Get("message")
	if !ok {
		return failf(engine.ReasonInvalidAppConfig, "the block has no message")
	}
	msg, err := r.render(b.ctx, "message", src, tctx)
	if err != nil {
		return err
	}
	own.Set("message", msg)
	resp, err := r.postToSlack(ctx, b, "notify", tctx)
	if err != nil || resp == nil {
		return err
	}
	return r.capture(b, TypeNotify, resp.Body)
}

// manualChoice: render title, generate choices, render every choice's header
// and options' value and text, render templates.manual-choice, POST to
// slack.url, capture.
func (r *Runner) manualChoice(ctx context.Context, b *blockRun) error {
	tctx, own, ok, err := r.open(b, false)
	if !ok {
		return err
	}
	if src, ok := b.block.Get("title"); ok {
		title, err := r.render(b.ctx, "title", src, tctx)
		if err != nil {
			return err
		}
		own.Set("title", title)
	}
	choices := document.NewMap()
	if cv, _ := own.Get("choices"); cv != nil {
		cm, ok := cv.(*document.Map)
		if !ok {
			return failf(engine.ReasonInvalidAppConfig, "choices must be a map of choice groups, not a %s", document.TypeName(cv))
		}
		choices = cm
	}
	own.Set("choices", choices)
	if err := r.generateChoices(b, tctx, choices); err != nil {
		return err
	}
	for _, name := range choices.Keys() {
		v, _ := choices.Get(name)
		c, ok := v.(*document.Map)
		if !ok {
			return failf(engine.ReasonInvalidAppConfig, "choice group %q must be a map with header and options, not a %s", name, document.TypeName(v))
		}
		if h, ok := c.Get("header"); ok {
			s, err := r.render(b.ctx, fmt.Sprintf("choices.%s.header", name), h, tctx)
			if err != nil {
				return err
			}
			c.Set("header", s)
		}
		ov, _ := c.Get("options")
		if ov == nil {
			continue
		}
		opts, ok := ov.([]any)
		if !ok {
			return failf(engine.ReasonInvalidAppConfig, "choices.%s.options must be a list, not a %s", name, document.TypeName(ov))
		}
		for i, o := range opts {
			om, ok := o.(*document.Map)
			if !ok {
				return failf(engine.ReasonInvalidAppConfig, "choices.%s.options[%d] must be a map with value and text, not a %s", name, i, document.TypeName(o))
			}
			for _, k := range []string{"value", "text"} {
				if v, ok := om.Get(k); ok {
					s, err := r.render(b.ctx, fmt.Sprintf("choices.%s.options[%d].%s", name, i, k), v, tctx)
					if err != nil {
						return err
					}
					om.Set(k, s)
				}
			}
		}
	}
	if isTrue(b.block, "wait") {
		// Checked before the message is posted: only Slack user ids authorize.
		if _, err := allowedUsers(b); err != nil {
			return err
		}
	}
	resp, err := r.postToSlack(ctx, b, "manual-choice", tctx)
	if err != nil || resp == nil {
		return err
	}
	if err := r.capture(b, TypeManualChoice, resp.Body); err != nil {
		return err
	}
	if isTrue(b.block, "wait") {
		return r.registerGate(ctx, b, own, []byte(resp.Body))
	}
	return nil
}

// StatusWaiting marks a manual-choice block whose gate waits for a choice.
const StatusWaiting = "waiting"

// registerGate records the approval gate of a manual-choice block with
// `wait: true`: its options, who may decide, and the Slack message (channel
// and ts of the chat.postMessage reply) whose buttons answer it. The op's
// JournalKey (the CustomRun UID) identifies the gate.
func (r *Runner) registerGate(ctx context.Context, b *blockRun, own *document.Map, reply []byte) error {
	if r.Gates == nil || b.in.OnWait == nil {
		return failf(engine.ReasonInvalidParams, "manual-choice %s has wait: true, which needs the controller (or a CLI with a Redis store)", b.name)
	}
	p := gate.Gate{Key: b.in.JournalKey, ContextID: store.Ref(b.in.Namespace, b.in.ID), Pipeline: b.in.Pipeline, Event: b.in.Event}
	p.Title, _ = own.GetString("title")
	choices, _ := own.GetMap("choices")
	choices.Range(func(_ string, g any) bool {
		gm, _ := g.(*document.Map)
		opts, _ := gm.Get("options")
		for _, o := range asList(opts) {
			if om, ok := o.(*document.Map); ok {
				v, _ := om.GetString("value")
				t, _ := om.GetString("text")
				if v != "" {
					p.Options = append(p.Options, gate.Option{Value: v, Text: t})
				}
			}
		}
		return true
	})
	if len(p.Options) == 0 {
		return failf(engine.ReasonInvalidAppConfig, "manual-choice %s has wait: true but no option with a value", b.name)
	}
	users, err := allowedUsers(b)
	if err != nil {
		return err
	}
	p.AllowedUsers = users
	if v, err := document.ParseJSON(reply); err == nil {
		if m, ok := v.(*document.Map); ok {
			p.SlackChannel, _ = m.GetString("channel")
			p.SlackTS, _ = m.GetString("ts")
		}
	}
	if _, err := r.Gates.Register(ctx, p); err != nil {
		return failf(engine.ReasonEventHandlerFailed, "manual-choice %s: registering the approval gate: %v", b.name, err)
	}
	b.entry.Status = StatusWaiting
	b.in.OnWait(p.Key)
	return nil
}

// allowedUsers is the block's allowed-users: a list of Slack user ids (gate.ValidUserID).
func allowedUsers(b *blockRun) ([]string, error) {
	v, ok := b.block.Get("allowed-users")
	if !ok || v == nil {
		return nil, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, failf(engine.ReasonInvalidAppConfig, "manual-choice %s: allowed-users must be a list of Slack user ids, not a %s", b.name, document.TypeName(v))
	}
	users := make([]string, 0, len(l))
	for _, u := range l {
		users = append(users, fmt.Sprint(u))
	}
	if err := gate.CheckAllowedUsers(users); err != nil {
		return nil, failf(engine.ReasonInvalidAppConfig, "manual-choice %s: %v", b.name, err)
	}
	return users, nil
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// isIdentifier says whether s is an identifier: ^[a-zA-Z_][a-zA-Z0-9_]*$.
func isIdentifier(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// generateChoices runs the block's choice-generators: for each entry of the
// map at `foreach` (a path into the in-memory document), the entry is put in
// the template context under `iterator` and `template` renders the YAML of
// one more choice group {name: {header, options}}.
func (r *Runner) generateChoices(b *blockRun, tctx, choices *document.Map) error {
	gv, _ := b.block.Get("choice-generators")
	if gv == nil {
		return nil
	}
	gens, ok := gv.(*document.Map)
	if !ok {
		return failf(engine.ReasonInvalidAppConfig, "choice-generators must be a map of generators, not a %s", document.TypeName(gv))
	}
	for _, gname := range gens.Keys() {
		where := "choice-generators." + gname
		v, _ := gens.Get(gname)
		g, ok := v.(*document.Map)
		if !ok {
			return failf(engine.ReasonInvalidAppConfig, "%s must be a map with foreach, iterator and template, not a %s", where, document.TypeName(v))
		}
		foreachSrc, _ := g.Get("foreach")
		tplSrc, _ := g.Get("template")
		iterSrc, _ := g.Get("iterator")
		if foreachSrc == nil || tplSrc == nil || iterSrc == nil {
			return failf(engine.ReasonInvalidAppConfig, "%s needs foreach, iterator and template", where)
		}
		foreach, err := r.render(b.ctx, where+".foreach", foreachSrc, tctx)
		if err != nil {
			return err
		}
		foreach = strings.TrimSpace(foreach)
		p, err := document.ParsePath(foreach)
		if err != nil {
			return failf(engine.ReasonInvalidAppConfig, "%s.foreach: %v", where, err)
		}
		items, found := p.Value(b.in.Doc)
		if !found || items == nil {
			r.log().Info("choice generator has nothing to iterate", "type", b.typ, "name", b.name, "generator", gname, "foreach", foreach)
			continue
		}
		im, ok := items.(*document.Map)
		if !ok {
			return failf(engine.ReasonInvalidAppConfig, "%s.foreach %q must point at a map, it holds a %s", where, foreach, document.TypeName(items))
		}
		iter, err := r.render(b.ctx, where+".iterator", iterSrc, tctx)
		if err != nil {
			return err
		}
		iter = strings.TrimSpace(iter)
		// As the original: the iterator may name a path whose string value
		// is the variable name; otherwise it is the name itself.
		if v, ok, _ := document.Lookup(b.in.Doc, iter); ok {
			if s, isStr := v.(string); isStr && strings.TrimSpace(s) != "" {
				iter = strings.TrimSpace(s)
			}
		}
		if !isIdentifier(iter) {
			return failf(engine.ReasonInvalidAppConfig, "%s.iterator %q is not a valid template variable name", where, iter)
		}
		for _, itemName := range im.Keys() {
			item, _ := im.Get(itemName)
			tctx.Set(iter, document.Clone(item))
			what := fmt.Sprintf("%s.template (item %s)", where, itemName)
			out, err := r.render(b.ctx, what, tplSrc, tctx)
			if err != nil {
				return err
			}
			parsed, err := document.ParseYAML([]byte(out))
			if err != nil {
				return failf(engine.ReasonTemplateError, "%s rendered text that is not YAML: %v", what, err)
			}
			pm, ok := parsed.(*document.Map)
			if !ok || pm.Len() == 0 {
				return failf(engine.ReasonTemplateError, "%s must render a map {choiceName: {header, options}}, it rendered a %s", what, document.TypeName(parsed))
			}
			name := pm.Keys()[0]
			cfg, _ := pm.Get(name)
			choices.Set(name, cfg)
		}
	}
	return nil
}

// respond: render message (stripped; empty skips) and every other key,
// render templates.respond, POST to the rendered url. No capture.
func (r *Runner) respond(ctx context.Context, b *blockRun) error {
	tctx, own, ok, err := r.open(b, false)
	if !ok {
		return err
	}
	src, _ := b.block.Get("message")
	msg, err := r.render(b.ctx, "message", src, tctx)
	if err != nil {
		return err
	}
	msg = strings.TrimSpace(msg)
	own.Set("message", msg)
	if msg == "" {
		b.entry.Status = StatusSkipped
		r.log().Info("respond skipped: its message is blank", "name", b.name)
		return nil
	}
	for _, k := range b.block.Keys() {
		switch k {
		case "message", "url", "if", "enabled", "optional":
			continue
		}
		v, _ := b.block.Get(k)
		s, err := r.render(b.ctx, k, v, tctx)
		if err != nil {
			return err
		}
		own.Set(k, s)
	}
	body, err := r.bodyTemplate(b, "respond", tctx)
	if err != nil {
		return err
	}
	urlSrc, _ := b.block.Get("url")
	url, err := r.render(b.ctx, "url", urlSrc, tctx)
	if err != nil {
		return err
	}
	url = strings.TrimSpace(url)
	if url == "" {
		b.entry.Status = StatusSkipped
		r.log().Info("respond skipped: its url is blank", "name", b.name)
		return nil
	}
	// The url is the pipeline author's: it may reach only the hosts the
	// admin allows (config.HTTPPolicy), and the Slack token goes only to
	// the Slack host.
	policy, err := b.cfg().HTTPPolicy()
	if err != nil {
		return failf(engine.ReasonInvalidConfig, "%v", err)
	}
	if err := policy.Check(url); err != nil {
		r.log().Warn("respond refused: its url is not allowed", "name", b.name, "error", b.redact(err.Error()))
		return failf(engine.ReasonEventHandlerFailed, "%v", err)
	}
	headers := []httpclient.Header{
		{Name: "Content-Type", Value: "application/json; charset=UTF-8"},
		{Name: "Accept", Value: "*/*"},
		{Name: "Cache-Control", Value: "no-cache"},
	}
	if slackURL := strings.TrimSpace(b.cfg().StringAt("slack.url")); slackURL != "" && httpclient.SameHost(url, slackURL) {
		if _, headers, err = slackTarget(b, false); err != nil {
			return err
		}
	}
	_, err = r.send(ctx, b, httpclient.Request{URL: url, Headers: headers, Body: []byte(body), Policy: policy})
	return err
}

// TriggerCall is one trigger-pipeline block, rendered.
type TriggerCall struct {
	Pipeline, Event string // the event being handled
	// Namespace is where the CustomRun that handles the event lives (empty
	// in the CLI).
	Namespace string
	// Config is the configuration the event runs with.
	Config *config.Config
	Name   string // block name ("default" without named blocks)
	// Block is the handler block as configured (do not modify).
	Block *document.Map
	// Context is the block's template context (without secretData).
	Context *document.Map
	// Payload is config trigger.auto-args then the block's args, rendered
	// (all values strings).
	Payload *document.Map
	// URL is config trigger.url; Headers the fixed ones plus the rendered
	// config trigger.headers; Body the Payload as Python's json.dumps.
	URL     string
	Headers []httpclient.Header
	Body    []byte
}

// PostTrigger is the default trigger: POST call.Body to call.URL.
func (r *Runner) PostTrigger(ctx context.Context, call *TriggerCall) (*httpclient.Response, error) {
	if strings.TrimSpace(call.URL) == "" {
		return nil, failf(engine.ReasonEventHandlerFailed, "config.yaml has no trigger.url (where trigger-pipeline posts)")
	}
	return r.client().Do(ctx, httpclient.Request{URL: call.URL, Headers: call.Headers, Body: call.Body})
}

// triggerPipeline: payload = rendered trigger.auto-args then args, headers =
// fixed + rendered trigger.headers (with secretData), POST to trigger.url.
// No state change.
func (r *Runner) triggerPipeline(ctx context.Context, b *blockRun) error {
	tctx, _, ok, err := r.open(b, false)
	if !ok {
		return err
	}
	cfg := b.cfg()
	payload := document.NewMap()
	autoArgs := cfg.MapAt("trigger.auto-args")
	for _, k := range autoArgs.Keys() {
		v, _ := autoArgs.Get(k)
		s, err := r.render(b.ctx, "config.yaml trigger.auto-args."+k, v, tctx)
		if err != nil {
			return err
		}
		payload.Set(k, s)
	}
	if av, _ := b.block.Get("args"); av != nil {
		args, ok := av.(*document.Map)
		if !ok {
			return failf(engine.ReasonInvalidAppConfig, "args must be a map, not a %s", document.TypeName(av))
		}
		for _, k := range args.Keys() {
			v, _ := args.Get(k)
			s, err := r.render(b.ctx, "args."+k, v, tctx)
			if err != nil {
				return err
			}
			payload.Set(k, s)
		}
	}
	var headerDoc *document.Map
	if r.DocumentInHeaders {
		headerDoc = tctx
	}
	headers, err := r.TriggerHeaders(cfg, headerDoc)
	if err != nil {
		return err
	}
	body, err := document.MarshalJSON(payload, document.PythonJSON)
	if err != nil {
		return failf(engine.ReasonEventHandlerFailed, "encoding the payload: %v", err)
	}
	call := &TriggerCall{
		Pipeline: b.in.Pipeline, Event: b.in.Event, Namespace: b.in.Namespace, Config: cfg, Name: b.name, Block: b.block, Context: tctx,
		Payload: payload, URL: strings.TrimSpace(cfg.StringAt("trigger.url")), Headers: headers, Body: body,
	}
	trigger := r.Trigger
	if trigger == nil {
		trigger = r.PostTrigger
	}
	r.log().Debug("event handler request", "type", b.typ, "name", b.name, "host", httpclient.Host(call.URL), "body", b.redact(string(body)))
	_, err = r.journaled(ctx, b, func(ctx context.Context) (*httpclient.Response, error) { return trigger(ctx, call) })
	return err
}

// setValues: for each {from, to} of `set`, from rendered and stripped; when
// not empty it is stored at the rendered to The context is built
// once per block.
func (r *Runner) setValues(_ context.Context, b *blockRun) error {
	tctx, _, ok, err := r.open(b, true)
	if !ok {
		return err
	}
	sv, _ := b.block.Get("set")
	var items []any
	if sv != nil {
		l, ok := sv.([]any)
		if !ok {
			return failf(engine.ReasonInvalidAppConfig, "set must be a list of {from, to}, not a %s", document.TypeName(sv))
		}
		items = l
	}
	for i, it := range items {
		m, ok := it.(*document.Map)
		if !ok {
			return failf(engine.ReasonInvalidAppConfig, "set[%d] must be a map with from and to, not a %s", i, document.TypeName(it))
		}
		if err := r.assign(b, fmt.Sprintf("set[%d]", i), m, tctx, nil); err != nil {
			return err
		}
	}
	b.entry.Status = StatusApplied
	return nil
}

// assign renders one {from, to} rule against tctx and stores the stripped
// value (after filter) at the rendered path when it is not empty.
func (r *Runner) assign(b *blockRun, what string, rule, tctx *document.Map, filter func(string) string) error {
	from, _ := rule.Get("from")
	v, err := r.render(b.ctx, what+".from", from, tctx)
	if err != nil {
		return err
	}
	if filter != nil {
		v = filter(v)
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	toSrc, _ := rule.Get("to")
	to, err := r.render(b.ctx, what+".to", toSrc, tctx)
	if err != nil {
		return err
	}
	to = strings.TrimSpace(to)
	if to == "" {
		return failf(engine.ReasonInvalidAppConfig, "%s.to is blank: no path to store the value at", what)
	}
	if err := document.SetPath(b.in.Doc, to, v); err != nil {
		return failf(engine.ReasonInvalidAppConfig, "%s: cannot store at %q: %v", what, to, err)
	}
	return nil
}

// capture applies the capture rules of a reply (docs/compatibility.md): config
// <handler>.auto-capture-response-data then the block's
// capture-response-data, against one context (document + configData +
// body), secrets redacted from the captured values.
func (r *Runner) capture(b *blockRun, handler, body string) error {
	type source struct {
		where string
		v     any
	}
	auto, _ := b.cfg().MapAt(handler).Get("auto-capture-response-data")
	own, _ := b.block.Get("capture-response-data")
	var rules []*document.Map
	var names []string
	for _, s := range []source{{"config.yaml " + handler + ".auto-capture-response-data", auto}, {"capture-response-data", own}} {
		if s.v == nil {
			continue
		}
		l, ok := s.v.([]any)
		if !ok {
			return failf(engine.ReasonInvalidAppConfig, "%s must be a list of {from, to}, not a %s", s.where, document.TypeName(s.v))
		}
		for i, it := range l {
			m, ok := it.(*document.Map)
			if !ok {
				return failf(engine.ReasonInvalidAppConfig, "%s[%d] must be a map with from and to, not a %s", s.where, i, document.TypeName(it))
			}
			rules = append(rules, m)
			names = append(names, fmt.Sprintf("%s[%d]", s.where, i))
		}
	}
	if len(rules) == 0 {
		return nil
	}
	tctx := document.CloneMap(b.in.Doc)
	if d := b.cfg().Data; d != nil {
		tctx.Set("configData", d)
	}
	tctx.Set("body", parseBody(body))
	for i, rule := range rules {
		if err := r.assign(b, names[i], rule, tctx, b.redact); err != nil {
			return err
		}
	}
	return nil
}

// parseBody is the reply as document values when it is JSON, else the text.
func parseBody(body string) any {
	if v, err := document.ParseJSON([]byte(body)); err == nil {
		return v
	}
	return body
}

// headerContext is the template context of trigger.headers: the admin's
// own data only (configData, secretData), so no macro prefix and no value a
// pipeline author wrote. legacy, when not nil (CLI runs only), is the
// block's template context, whose keys (document, macros) are kept.
func headerContext(cfg *config.Config, legacy *document.Map) *document.Map {
	hctx := document.NewMap()
	if legacy != nil {
		hctx = document.CloneMap(legacy)
	}
	if cfg.Data != nil {
		hctx.Set("configData", cfg.Data)
	} else {
		hctx.Set("configData", document.NewMap())
	}
	hctx.Set("secretData", document.CloneMap(cfg.Secrets))
	return hctx
}

// TriggerHeaders returns the headers of a trigger POST: the fixed ones and
// config trigger.headers rendered from the admin's text only, against
// configData and secretData (the one place templates see the secrets): no
// macro prefix, no value a pipeline author wrote. doc is nil in the
// controller; the CLI passes the block's template context (see cliRun). The headers go to
// trigger.url only (redirects to another host are not followed). Errors are
// redacted.
func (r *Runner) TriggerHeaders(cfg *config.Config, doc *document.Map) ([]httpclient.Header, error) {
	headers := []httpclient.Header{
		{Name: "Content-Type", Value: "application/json"},
		{Name: "Accept", Value: "*/*"},
		{Name: "Cache-Control", Value: "no-cache"},
	}
	hv, _, _ := document.Lookup(cfg.Data, "trigger.headers")
	if hv == nil {
		return headers, nil
	}
	hl, ok := hv.([]any)
	if !ok {
		return nil, failf(engine.ReasonInvalidConfig, "config.yaml trigger.headers must be a list of {name, value}, not a %s", document.TypeName(hv))
	}
	hctx := headerContext(cfg, doc)
	redact := newRedactor(cfg)
	for i, h := range hl {
		hm, ok := h.(*document.Map)
		name, _ := hm.GetString("name")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, failf(engine.ReasonInvalidConfig, "config.yaml trigger.headers[%d] must be a map with a name and a value", i)
		}
		v, _ := hm.Get("value")
		s, err := r.render(context.Background(), fmt.Sprintf("config.yaml trigger.headers[%d].value", i), v, hctx)
		if err != nil {
			return nil, &engine.Error{Reason: engine.ReasonTemplateError, Message: redact(err.Error())}
		}
		headers = append(headers, httpclient.Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(s)})
	}
	return headers, nil
}
