package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// DefaultCicdContext is the cicd-contexts block init picks by default.
const DefaultCicdContext = "stage"

// init builds a new document from the app config (as the original, in that order:
// context block, appPipelinesConfig, macros, state, sets, variables, event)
// and stores it, replacing any document with the same id.
func (e *Engine) init(ctx context.Context, req Request) (*Outcome, error) {
	doc, err := e.BuildDocument(ctx, req)
	if err != nil {
		return nil, err
	}
	handled, waiting, err := e.runEvent(ctx, req, doc, newJournalKey(req.OpKey))
	if err != nil {
		return nil, err
	}
	out := &Outcome{ID: req.ID, Handled: handled, Waiting: waiting, Doc: doc}
	if req.Event != nil {
		out.Results = append(out.Results, Result{Name: "handled", Value: handled})
	}
	record, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	stored, replayed, err := e.Store.Put(e.recording(ctx, req.ref(), string(req.Op), req.Who, req.Config), req.ref(), doc, store.PutOptions{TTL: req.TTL, OpKey: req.OpKey, Result: record})
	if err != nil {
		return nil, err
	}
	if replayed {
		return decodeOutcome(stored, true, nil)
	}
	return out, nil
}

// BuildDocument is init without the event and the write: the document an
// app config yields.
func (e *Engine) BuildDocument(ctx context.Context, req Request) (*document.Map, error) {
	if len(strings.TrimSpace(string(req.AppConfig))) == 0 {
		return nil, Errorf(ReasonInvalidParams, "init needs an app config")
	}
	budgets := req.budgets()
	app, err := document.ParseYAMLMap(req.AppConfig)
	if err != nil {
		return nil, Errorf(ReasonInvalidAppConfig, "app config: %v", err)
	}
	merged, err := mergeBases(app, req.Bases, budgets.AppConfigBytes)
	if err != nil {
		return nil, err
	}
	name := req.CicdContext
	if name == "" {
		name = DefaultCicdContext
	}
	block, err := cicdContextBlock(merged, name)
	if err != nil {
		return nil, err
	}
	doc := document.CloneMap(block)
	if share, ok := merged.Get(ShareKey); ok && !doc.Has(ShareKey) {
		doc.Set(ShareKey, document.Clone(share))
	}
	if err := checkShare(doc); err != nil {
		return nil, err
	}
	doc.Set("appPipelinesConfig", document.Clone(app))
	macros, err := buildMacros(merged)
	if err != nil {
		return nil, err
	}
	doc.Set("jinja2Macros", macros)
	state := document.NewMap()
	state.Set("cicdContextDataId", req.ID)
	state.Set("cicdContextName", name)
	doc.Set("state", state)
	if err := applySets(doc, req.Sets); err != nil {
		return nil, err
	}
	if err := e.renderVariables(ctx, doc, merged); err != nil {
		return nil, err
	}
	return doc, nil
}

func mergeBases(app *document.Map, load BaseLoader, limit int64) (*document.Map, error) {
	merged := document.NewMap()
	if bv, ok := app.Get("bases"); ok && bv != nil {
		bases, isList := bv.([]any)
		if !isList {
			return nil, Errorf(ReasonInvalidAppConfig, "app config: bases must be a list of file names, not a %s", document.TypeName(bv))
		}
		for _, b := range bases {
			name, isStr := b.(string)
			if !isStr || strings.TrimSpace(name) == "" {
				return nil, Errorf(ReasonInvalidAppConfig, "app config: bases entry %v is not a file name", b)
			}
			base, err := loadBase(name, load, limit)
			if err != nil {
				return nil, err
			}
			if merged, err = document.Merge(merged, base); err != nil {
				return nil, Errorf(ReasonInvalidAppConfig, "merging base %s: %v", name, err)
			}
		}
	}
	merged, err := document.Merge(merged, app)
	if err != nil {
		return nil, Errorf(ReasonInvalidAppConfig, "merging the app config over its bases: %v", err)
	}
	return merged, nil
}

// loadBase reads one base file. Names come from app repositories, so they
// may not climb out of the bases directory.
func loadBase(name string, load BaseLoader, limit int64) (*document.Map, error) {
	clean := path.Clean(name)
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, Errorf(ReasonInvalidAppConfig, "base %q: base names must be relative and stay inside the bases directory", name)
	}
	if load == nil {
		return nil, Errorf(ReasonInvalidParams, "the app config names base %q but no bases directory or ConfigMap was given", name)
	}
	text, err := load(clean)
	if err != nil {
		return nil, Errorf(ReasonInvalidAppConfig, "base %q: %v", name, err)
	}
	if n := int64(len(text)); n > limit {
		return nil, AppConfigTooLarge(fmt.Sprintf("base %q", clipPath(name)), n, limit)
	}
	base, err := document.ParseYAMLMap(text)
	if err != nil {
		return nil, Errorf(ReasonInvalidAppConfig, "base %q: %v", name, err)
	}
	return base, nil
}

func cicdContextBlock(merged *document.Map, name string) (*document.Map, error) {
	contexts, ok := merged.GetMap("cicd-contexts")
	if !ok {
		return nil, Errorf(ReasonInvalidAppConfig, "app config has no cicd-contexts map")
	}
	v, ok := contexts.Get(name)
	if !ok {
		return nil, Errorf(ReasonInvalidParams, "app config has no cicd-contexts.%s (it has: %s)", name, strings.Join(contexts.Keys(), ", "))
	}
	if v == nil {
		return document.NewMap(), nil
	}
	block, ok := v.(*document.Map)
	if !ok {
		return nil, Errorf(ReasonInvalidAppConfig, "cicd-contexts.%s must be a map, not a %s", name, document.TypeName(v))
	}
	return block, nil
}

func buildMacros(merged *document.Map) (*document.Map, error) {
	byName := document.NewMap()
	var all strings.Builder
	if mv, ok := merged.Get("jinja2-macros"); ok && mv != nil {
		macros, isMap := mv.(*document.Map)
		if !isMap {
			return nil, Errorf(ReasonInvalidAppConfig, "jinja2-macros must be a map of name: macro text")
		}
		var err error
		macros.Range(func(name string, v any) bool {
			text, isStr := v.(string)
			if !isStr {
				err = Errorf(ReasonInvalidAppConfig, "jinja2-macros.%s must be text, not a %s", name, document.TypeName(v))
				return false
			}
			byName.Set(name, text)
			all.WriteString(strings.TrimSpace(text))
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	m := document.NewMap()
	m.Set("byName", byName)
	m.Set("all", all.String())
	return m, nil
}

// renderVariables renders the merged variables once, in order, against the
// document itself (no configData, no tmpl-ctx-vars), as the original does.
func (e *Engine) renderVariables(ctx context.Context, doc, merged *document.Map) error {
	vv, ok := merged.Get("variables")
	if !ok || vv == nil {
		return nil
	}
	vars, isMap := vv.(*document.Map)
	if !isMap {
		return Errorf(ReasonInvalidAppConfig, "variables must be a map of name: template")
	}
	target, ok := doc.GetMap("variables")
	if !ok {
		target = document.NewMap()
		doc.Set("variables", target)
	}
	for _, name := range vars.Keys() {
		v, _ := vars.Get(name)
		src, isStr := v.(string)
		if !isStr {
			return Errorf(ReasonInvalidAppConfig, "variables.%s must be a string template, not a %s", name, document.TypeName(v))
		}
		out, err := e.Templates.RenderContext(ctx, src, doc)
		if err != nil {
			return AsError(fmt.Errorf("variables.%s: %w", name, err), ReasonTemplateError)
		}
		target.Set(name, out)
	}
	return nil
}
