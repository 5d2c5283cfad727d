package tmpl

import (
	"context"
	"math"
	"sync/atomic"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/flosch/pongo2/v6"
)

// BudgetError is the cause of a render stopped by its budget
// (errors.As(err, &budgetErr)); its Budget names which: "steps", "output",
// "depth" or "deadline" (docs/templates.md "Budgets").
type BudgetError = pongo2.BudgetError

func orDefault[T int | int64](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0 // pongo2: unlimited
	}
	return v
}

func init() {
	// Indented JSON is checked against the output budget before it is
	// built: every value below the top is on a line of its own, indented
	// indent × its depth.
	pongo2.RegisterFilterSize("json_dumps", func(in, param *pongo2.Value) int64 {
		indent, _, err := jsonDumpsArgs(param)
		if err != nil {
			return 0
		}
		return indentedSize(in.Interface(), indent)
	})
	pongo2.RegisterFilterSize("tojson", func(in, param *pongo2.Value) int64 {
		if param == nil || !param.IsInteger() {
			return 0
		}
		return indentedSize(in.Interface(), param.Integer())
	})
}

// indentedSize is a lower bound of the indentation bytes of v as JSON
// indented by indent (saturating at math.MaxInt64).
func indentedSize(v any, indent int) int64 {
	if indent <= 0 {
		return 0
	}
	var total int64
	var walk func(v any, depth int64) bool
	add := func(depth int64) bool {
		n := depth * int64(indent)
		if depth != 0 && n/depth != int64(indent) || total > math.MaxInt64-n {
			total = math.MaxInt64
			return false
		}
		total += n
		return true
	}
	walk = func(v any, depth int64) bool {
		if pv, ok := v.(*pongo2.Value); ok {
			v = pv.Interface()
		}
		switch t := v.(type) {
		case *document.Map:
			ok := true
			t.Range(func(_ string, e any) bool {
				ok = add(depth+1) && walk(e, depth+1)
				return ok
			})
			return ok
		case map[string]any:
			for _, e := range t {
				if !add(depth+1) || !walk(e, depth+1) {
					return false
				}
			}
		case []any:
			for _, e := range t {
				if !add(depth+1) || !walk(e, depth+1) {
					return false
				}
			}
		case []string:
			return len(t) == 0 || add(int64(len(t))*(depth+1))
		}
		return true
	}
	walk(v, 0)
	return total
}

// opOutput is the output budget shared by the renders of one op.
type opOutput struct {
	limit int64
	used  atomic.Int64
}

type opOutputKey struct{}

// BudgetOpOutput names the budget of WithOpOutput in a *BudgetError.
const BudgetOpOutput = "opOutput"

// WithOpOutput bounds the output of every render made with the returned
// context, added up, to limit bytes. Each render is bounded by the Env's
// output budget; this bounds how many of them one op keeps: a hundred
// variables of a megabyte each are a hundred renders within budget, but not
// a document the op may build. Past the limit a render fails with a
// *BudgetError (budget "opOutput").
func WithOpOutput(ctx context.Context, limit int64) context.Context {
	if limit <= 0 {
		return ctx
	}
	b := &opOutput{limit: limit}
	return context.WithValue(ctx, opOutputKey{}, b)
}

// chargeOutput adds a render's output to the op's budget, if rctx has one.
func chargeOutput(rctx context.Context, n int) error {
	b, _ := rctx.Value(opOutputKey{}).(*opOutput)
	if b == nil {
		return nil
	}
	if b.used.Add(int64(n)) > b.limit {
		return &BudgetError{Budget: BudgetOpOutput, Limit: b.limit, Detail: "the renders of one op together"}
	}
	return nil
}
