package engine

import (
	"context"
	"strings"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// generate runs the generator object at req.Generator: for each
// entry in order, when its `if` renders non-blank, every {key, value} of its
// `set` list is rendered and stored. Later entries see earlier writes.
func (e *Engine) generate(ctx context.Context, req Request, doc *document.Map) error {
	p, err := document.ParsePath(req.Generator)
	if err != nil {
		return Errorf(ReasonInvalidParams, "generator path %q: %v", req.Generator, err)
	}
	found := p.Find(doc)
	if len(found) != 1 {
		return Errorf(ReasonInvalidParams, "generator path %q must match exactly one object, it matched %d", req.Generator, len(found))
	}
	gen, ok := found[0].(*document.Map)
	if !ok {
		return Errorf(ReasonInvalidParams, "generator path %q holds a %s, not a map of generator entries", req.Generator, document.TypeName(found[0]))
	}
	for _, name := range gen.Keys() {
		v, _ := gen.Get(name)
		cfg, ok := v.(*document.Map)
		if !ok {
			return Errorf(ReasonInvalidAppConfig, "generator entry %s must be a map with `if` and `set`", name)
		}
		if err := e.generateEntry(ctx, doc, req, name, cfg); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) generateEntry(rctx context.Context, doc *document.Map, req Request, name string, cfg *document.Map) error {
	ctx, err := tmpl.Context(doc, req.Config.Data, req.Vars)
	if err != nil {
		return Errorf(ReasonInvalidParams, "%v", err)
	}
	ctx.Set("generator", document.Clone(cfg))
	if cond, ok := cfg.Get("if"); ok {
		src, _ := cond.(string)
		pass, err := e.Templates.ConditionContext(rctx, src, ctx, true)
		if err != nil {
			e.log().Info("generator condition did not render: skipping", "entry", name, "error", err)
		}
		if !pass {
			return nil
		}
	}
	sv, _ := cfg.Get("set")
	items, _ := sv.([]any)
	for i, it := range items {
		item, ok := it.(*document.Map)
		if !ok {
			return Errorf(ReasonInvalidAppConfig, "generator %s set[%d] must be a map with key and value", name, i)
		}
		keyT, _ := item.Get("key")
		key, err := e.Templates.RenderAnyContext(rctx, keyT, ctx)
		if err != nil {
			return AsError(err, ReasonTemplateError)
		}
		raw, _ := item.Get("value")
		if strings.TrimSpace(key) == "" || !document.Truthy(raw) {
			continue
		}
		val, err := e.Templates.RenderAnyContext(rctx, raw, ctx)
		if err != nil {
			return AsError(err, ReasonTemplateError)
		}
		if err := document.SetPath(doc, strings.TrimSpace(key), strings.TrimSpace(val)); err != nil {
			return Errorf(ReasonInvalidParams, "generator %s: %v", name, err)
		}
	}
	return nil
}
