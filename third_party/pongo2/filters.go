package pongo2

import (
	"fmt"
	"reflect"
)

// FilterFunction is the type filter functions must fulfil
type FilterFunction func(in *Value, param *Value) (out *Value, err *Error)

var filters map[string]FilterFunction

func init() {
	filters = make(map[string]FilterFunction)
}

// FilterExists returns true if the given filter is already registered
func FilterExists(name string) bool {
	_, existing := filters[name]
	return existing
}

// RegisterFilter registers a new filter. If there's already a filter with the same. You usually
// want to call this function in the filter's init() function:
//
//	http://golang.org/doc/effective_go.html#init
func RegisterFilter(name string, fn FilterFunction) error {
	if FilterExists(name) {
		return fmt.Errorf("filter with name '%s' is already registered", name)
	}
	filters[name] = fn
	return nil
}

// ReplaceFilter replaces an already registered filter with a new implementation. Use this
// function with caution since it allows you to change existing filter behaviour.
func ReplaceFilter(name string, fn FilterFunction) error {
	if !FilterExists(name) {
		return fmt.Errorf("filter with name '%s' does not exist (therefore cannot be overridden)", name)
	}
	filters[name] = fn
	return nil
}

// MustApplyFilter behaves like ApplyFilter, but panics on an error.
func MustApplyFilter(name string, value *Value, param *Value) *Value {
	val, err := ApplyFilter(name, value, param)
	if err != nil {
		panic(err)
	}
	return val
}

// ApplyFilter applies a filter to a given value using the given parameters.
// Returns a *pongo2.Value or an error.
func ApplyFilter(name string, value *Value, param *Value) (*Value, *Error) {
	fn, existing := filters[name]
	if !existing {
		return nil, &Error{
			Sender:    "applyfilter",
			OrigError: fmt.Errorf("filter with name '%s' not found", name),
		}
	}

	// Make sure param is a *Value
	if param == nil {
		param = AsValue(nil)
	}

	return fn(value, param)
}

type filterCall struct {
	token *Token

	name      string
	parameter IEvaluator

	filterFunc FilterFunction
}

func (fc *filterCall) Execute(v *Value, ctx *ExecutionContext) (*Value, *Error) {
	var param *Value
	var err *Error

	if fc.parameter != nil {
		param, err = fc.parameter.Evaluate(ctx)
		if err != nil {
			return nil, err
		}
	} else {
		param = AsValue(nil)
	}

	// cicdstatemgr patch 8: a filter is a step; its result's size is
	// checked before it runs (RegisterFilterSize) and charged after.
	if err := ctx.step(fc.token); err != nil {
		return nil, err
	}
	if err := ctx.scan(v, false, fc.token); err != nil {
		return nil, err
	}
	if err := ctx.filterFits(fc.name, v, param, fc.token); err != nil {
		return nil, err
	}

	filteredValue, err := fc.filterFunc(v, param)
	if err != nil {
		return nil, err.updateFromTokenIfNeeded(ctx.template, fc.token)
	}
	if err := ctx.filterBuilt(fc.name, filteredValue, fc.token); err != nil {
		return nil, err
	}
	return filteredValue, nil
}

// cicdstatemgr patch 8: filterFits checks a filter's registered size
// estimate against the budget; filterBuilt charges its string result.
func (ctx *ExecutionContext) filterFits(name string, in, param *Value, token *Token) *Error {
	if ctx.budget == nil {
		return nil
	}
	if fn, ok := sizeFilters[name]; ok {
		if n := fn(in, param); n > 0 {
			return ctx.fits(n, "result of filter '"+name+"'", token)
		}
	}
	return nil
}

func (ctx *ExecutionContext) filterBuilt(name string, out *Value, token *Token) *Error {
	if ctx.budget == nil || out == nil {
		return nil
	}
	if out.IsString() {
		return ctx.built(len(out.String()), "result of filter '"+name+"'", token)
	}
	// A list or map result (make_list, split, slice, from_json, ...) costs a
	// step per value in it, nested ones too, as reading it would: counted up
	// to the steps left, so counting costs no more than the budget allows.
	left := ctx.budget.b.MaxSteps - ctx.budget.steps
	if ctx.budget.b.MaxSteps <= 0 {
		return nil
	}
	if n := countValues(out.Interface(), left+1); n > 0 {
		return ctx.steps(int(n), token)
	}
	return nil
}

// countValues counts the values in v (not v itself), nested ones too,
// stopping once it has counted max.
func countValues(v any, max int64) int64 {
	var n int64
	var walk func(rv reflect.Value)
	walk = func(rv reflect.Value) {
		for n < max && rv.IsValid() && (rv.Kind() == reflect.Interface || rv.Kind() == reflect.Ptr) && !rv.IsNil() {
			if pv, ok := rv.Interface().(*Value); ok {
				rv = pv.val
				continue
			}
			if om, ok := asOrderedMap(rv); ok {
				for _, k := range om.Keys() {
					if n >= max {
						break
					}
					n++
					e, _ := om.Get(k)
					walk(reflect.ValueOf(e))
				}
				return
			}
			rv = rv.Elem()
		}
		switch rv.Kind() {
		case reflect.Slice, reflect.Array:
			for i := 0; i < rv.Len() && n < max; i++ {
				n++
				walk(rv.Index(i))
			}
		case reflect.Map:
			it := rv.MapRange()
			for it.Next() && n < max {
				n++
				walk(it.Value())
			}
		}
	}
	walk(reflect.ValueOf(v))
	return n
}

// Filter = IDENT | IDENT ":" FilterArg | IDENT "|" Filter
func (p *Parser) parseFilter() (*filterCall, *Error) {
	identToken := p.MatchType(TokenIdentifier)

	// Check filter ident
	if identToken == nil {
		return nil, p.Error("Filter name must be an identifier.", nil)
	}

	filter := &filterCall{
		token: identToken,
		name:  identToken.Val,
	}

	// Get the appropriate filter function and bind it
	filterFn, exists := filters[identToken.Val]
	if !exists {
		return nil, p.Error(fmt.Sprintf("Filter '%s' does not exist.", identToken.Val), identToken)
	}

	filter.filterFunc = filterFn

	// Check for filter-argument (2 tokens needed: ':' ARG)
	if p.Match(TokenSymbol, ":") != nil {
		if p.Peek(TokenSymbol, "}}") != nil {
			return nil, p.Error("Filter parameter required after ':'.", nil)
		}

		// Get filter argument expression
		v, err := p.parseVariableOrLiteral()
		if err != nil {
			return nil, err
		}
		filter.parameter = v
	}

	return filter, nil
}
