package tmpl

// The template context: what every template of an operation or an event
// handler sees (the document, configData and the tmpl-ctx-vars), built in one
// place so that all of them see exactly the same variables.

import (
	"context"
	"fmt"
	"strings"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// Var is one tmpl-ctx-var: Key is a dotted path in the template context,
// Expr a path into the document or, when it matches nothing, a literal.
type Var struct {
	Key, Expr string
}

// ParseVars parses "K=V" items, splitting on the first '='.
func ParseVars(items []string) ([]Var, error) {
	out := make([]Var, 0, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("tmpl-ctx-var %q is not of the form key=value", it)
		}
		out = append(out, Var{Key: strings.TrimSpace(k), Expr: v})
	}
	return out, nil
}

// Resolve evaluates a tmpl-ctx-var expression against the document: a path
// that matches gives the matched value (several matches give a list), a path
// that does not parse or matches nothing is taken literally.
func (v Var) Resolve(doc *document.Map) any {
	p, err := document.ParsePath(v.Expr)
	if err != nil {
		return v.Expr
	}
	if val, ok := p.Value(doc); ok {
		return val
	}
	return v.Expr
}

// Context is the template context: a deep copy of the document, the
// config data as configData, and the tmpl-ctx-vars on top. Only truthy var
// values are set, as in the original (a falsy one leaves its key undefined).
func Context(doc, configData *document.Map, vars []Var) (*document.Map, error) {
	ctx := document.CloneMap(doc)
	if configData != nil {
		ctx.Set("configData", configData)
	}
	for _, v := range vars {
		val := v.Resolve(doc)
		if !document.Truthy(val) {
			continue
		}
		if s, ok := val.(string); ok {
			val = strings.TrimSpace(s)
		} else {
			val = document.Clone(val)
		}
		if err := document.SetPath(ctx, v.Key, val); err != nil {
			return nil, fmt.Errorf("tmpl-ctx-var %q: %w", v.Key, err)
		}
	}
	return ctx, nil
}

// Condition renders an `if` value the way the original does: a render error
// counts as blank (the original's blankOnError), and blank means false.
// strip says whether surrounding whitespace is ignored.
func (e *Env) Condition(src string, ctx *document.Map, strip bool) (bool, error) {
	return e.ConditionContext(context.Background(), src, ctx, strip)
}

// ConditionContext is Condition with the render's context (see RenderContext).
func (e *Env) ConditionContext(rctx context.Context, src string, ctx *document.Map, strip bool) (bool, error) {
	out, err := e.RenderContext(rctx, src, ctx)
	if err != nil {
		return false, err
	}
	if strip {
		out = strings.TrimSpace(out)
	}
	return out != "", nil
}

// RenderAny renders a config value that should be a template: strings are
// rendered, other scalars are turned into their text first (the original
// str()-s trigger args and headers), nil renders as "".
func (e *Env) RenderAny(v any, ctx *document.Map) (string, error) {
	return e.RenderAnyContext(context.Background(), v, ctx)
}

// RenderAnyContext is RenderAny with the render's context (see RenderContext).
func (e *Env) RenderAnyContext(rctx context.Context, v any, ctx *document.Map) (string, error) {
	switch t := v.(type) {
	case nil:
		return "", nil
	case string:
		return e.RenderContext(rctx, t, ctx)
	case bool:
		if t {
			return e.RenderContext(rctx, "True", ctx)
		}
		return e.RenderContext(rctx, "False", ctx)
	case int, float64:
		return document.MustJSON(t, document.JSONStyle{}), nil
	default:
		return e.RenderContext(rctx, document.MustJSON(t, document.PythonJSON), ctx)
	}
}
