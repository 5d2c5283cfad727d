package pongo2

// cicdstatemgr patch 8: render budgets. A template rendered with
// Template.ExecuteBudget stops with a *BudgetError when it evaluates too many
// nodes (steps), writes or builds too much text (output), nests too deeply
// (depth) or when its context.Context is done (deadline). The parser limits
// expression and tag nesting (TemplateSet.MaxDepth) for every template.

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// DefaultMaxDepth is the parser's nesting limit when TemplateSet.MaxDepth is 0.
const DefaultMaxDepth = 64

// BytesPerStep: every BytesPerStep bytes a filter, a string concatenation
// or a macro call produces count as one step, so the step budget also bounds
// the text a render builds and throws away.
const BytesPerStep = 8

// Reading a value costs a step per ScanBytesPerStep bytes of a string (a
// filter's input, an operand of "in", "==" or "!=") and ScanStepsPerItem
// steps per item of a list or map (an operand of "in", "==" or "!="), so
// the step budget also bounds the time spent reading large values.
const (
	ScanBytesPerStep = 256
	ScanStepsPerItem = 2
)

// MacroCallSteps is the cost of a macro call in steps (a new context, its
// arguments and buffer), plus one per entry of the caller's private context.
const MacroCallSteps = 16

// contextCheckSteps: the render's context is checked every contextCheckSteps steps.
const contextCheckSteps = 1024

// Budget limits one render. Zero or negative limits are unlimited; a nil
// Context is never done.
type Budget struct {
	Context context.Context
	// MaxSteps bounds node evaluations (each output node, tag, variable or
	// filter call, loop iteration, macro call; plus one per BytesPerStep
	// bytes of text built).
	MaxSteps int64
	// MaxOutput bounds the bytes written to the output, to a macro's or a
	// filter tag's buffer, and the length of any string a filter or "+" builds.
	MaxOutput int64
	// MaxMacroDepth bounds nested macro calls (0: MaxMacroDepth).
	MaxMacroDepth int
}

// BudgetError is a render stopped by its budget. Budget names it: "steps",
// "output", "depth" or "deadline".
type BudgetError struct {
	Budget string
	Limit  int64  // the limit that was exceeded (not for "deadline")
	Detail string // what exceeded it, e.g. "nested macro calls"
	Cause  error  // for "deadline": the context's error
}

func (e *BudgetError) Error() string {
	var s string
	if e.Cause != nil {
		s = fmt.Sprintf("render budget exceeded (%s: %v)", e.Budget, e.Cause)
	} else {
		s = fmt.Sprintf("render budget exceeded (%s: %d)", e.Budget, e.Limit)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *BudgetError) Unwrap() error { return e.Cause }

// budgetState is the budget of one execution, shared by all its
// ExecutionContexts. The first error is kept: every later step fails with it,
// so a template cannot swallow it.
type budgetState struct {
	b     Budget
	steps int64
	err   *BudgetError
}

func (s *budgetState) fail(e *BudgetError) *BudgetError {
	if s.err == nil {
		s.err = e
	}
	return s.err
}

func (s *budgetState) step(n int64) *BudgetError {
	if s.err != nil {
		return s.err
	}
	before := s.steps
	s.steps += n
	if s.b.MaxSteps > 0 && s.steps > s.b.MaxSteps {
		return s.fail(&BudgetError{Budget: "steps", Limit: s.b.MaxSteps})
	}
	if s.b.Context != nil && before/contextCheckSteps != s.steps/contextCheckSteps {
		if err := s.b.Context.Err(); err != nil {
			return s.fail(&BudgetError{Budget: "deadline", Cause: err})
		}
	}
	return nil
}

// size checks that a text of n bytes may be built.
func (s *budgetState) size(n int64, detail string) *BudgetError {
	if s.err != nil {
		return s.err
	}
	if n < 0 || (s.b.MaxOutput > 0 && n > s.b.MaxOutput) {
		return s.fail(&BudgetError{Budget: "output", Limit: s.b.MaxOutput, Detail: detail})
	}
	return nil
}

// built charges n bytes of built text: a size check and n/BytesPerStep steps.
func (s *budgetState) built(n int, detail string) *BudgetError {
	if err := s.size(int64(n), detail); err != nil {
		return err
	}
	if n >= BytesPerStep {
		return s.step(int64(n / BytesPerStep))
	}
	return nil
}

// step counts one step of the execution (nothing without a budget).
func (ctx *ExecutionContext) step(token *Token) *Error {
	return ctx.steps(1, token)
}

// steps counts n steps.
func (ctx *ExecutionContext) steps(n int, token *Token) *Error {
	if ctx.budget == nil {
		return nil
	}
	if err := ctx.budget.step(int64(n)); err != nil {
		return ctx.OrigError(err, token)
	}
	return nil
}

// scan charges reading v (see ScanBytesPerStep); items: lists and maps too.
func (ctx *ExecutionContext) scan(v *Value, items bool, token *Token) *Error {
	if ctx.budget == nil || v == nil {
		return nil
	}
	var n int
	switch v.getResolvedValue().Kind() {
	case reflect.String:
		n = v.getResolvedValue().Len() / ScanBytesPerStep
	case reflect.Slice, reflect.Array, reflect.Map:
		if !items {
			return nil
		}
		n = v.getResolvedValue().Len() * ScanStepsPerItem
	default:
		if om, ok := asOrderedMap(v.val); ok && items {
			n = om.Len() * ScanStepsPerItem
		}
	}
	if n == 0 {
		return nil
	}
	return ctx.steps(n, token)
}

// built charges a built text of n bytes.
func (ctx *ExecutionContext) built(n int, detail string, token *Token) *Error {
	if ctx.budget == nil {
		return nil
	}
	if err := ctx.budget.built(n, detail); err != nil {
		return ctx.OrigError(err, token)
	}
	return nil
}

// fits checks, before it is built, that a text of n bytes is within the budget.
func (ctx *ExecutionContext) fits(n int64, detail string, token *Token) *Error {
	if ctx.budget == nil {
		return nil
	}
	if err := ctx.budget.size(n, detail); err != nil {
		return ctx.OrigError(err, token)
	}
	return nil
}

// newBuffer is a buffer for a macro's or a filter tag's text: limited to
// the output budget.
func (ctx *ExecutionContext) newBuffer(b *bytes.Buffer) TemplateWriter {
	if ctx.budget == nil {
		return b
	}
	return &limitWriter{buf: b, st: ctx.budget}
}

// limitWriter drops what goes beyond the output budget and records the
// error (nodes ignore write errors; the next step returns it).
type limitWriter struct {
	buf *bytes.Buffer
	st  *budgetState
}

func (w *limitWriter) WriteString(s string) (int, error) {
	if err := w.st.size(int64(w.buf.Len())+int64(len(s)), ""); err != nil {
		return 0, err
	}
	return w.buf.WriteString(s)
}

func (w *limitWriter) Write(b []byte) (int, error) {
	return w.WriteString(string(b))
}

// ExecuteBudget executes the template like Execute, within budget b.
// Exceeding the budget returns an *Error whose cause (errors.As) is a
// *BudgetError.
func (tpl *Template) ExecuteBudget(context Context, b Budget) (string, error) {
	parent, ctx, err := tpl.newContextForExecution(context)
	if err != nil {
		return "", err
	}
	st := &budgetState{b: b}
	ctx.budget = st
	if b.Context != nil {
		if err := b.Context.Err(); err != nil {
			return "", &Error{Template: parent, Filename: parent.name, Sender: "execution",
				OrigError: &BudgetError{Budget: "deadline", Cause: err}}
		}
	}
	buf := &bytes.Buffer{}
	if n := tpl.size + tpl.size/3; b.MaxOutput <= 0 || int64(n) <= b.MaxOutput {
		buf.Grow(n)
	}
	xerr := parent.root.Execute(ctx, &limitWriter{buf: buf, st: st})
	if xerr != nil {
		return "", xerr
	}
	if st.err != nil {
		return "", &Error{Template: parent, Filename: parent.name, Sender: "execution", OrigError: st.err}
	}
	return buf.String(), nil
}

// Parser nesting (cicdstatemgr patch 8): expressions and tags nest at most
// TemplateSet.MaxDepth levels each, so parsing and evaluating cannot
// overflow the Go stack.

func (set *TemplateSet) maxDepth() int {
	if set == nil || set.MaxDepth == 0 {
		return DefaultMaxDepth
	}
	return set.MaxDepth
}

func (p *Parser) enterDepth(counter *int, what string, extra int) *Error {
	*counter++
	if p.template == nil {
		return nil
	}
	if max := p.template.set.maxDepth(); max > 0 && *counter > max+extra {
		perr := p.Error("", nil)
		perr.OrigError = &BudgetError{Budget: "depth", Limit: int64(max), Detail: what + " nested too deeply"}
		return perr
	}
	return nil
}

// enterExpr and enterTag count one level of nesting; the caller defers leave.
func (p *Parser) enterExpr() *Error {
	if p.template == nil {
		return nil
	}
	return p.enterDepth(&p.template.exprDepth, "expressions", 0)
}

func (p *Parser) leaveExpr() {
	if p.template != nil {
		p.template.exprDepth--
	}
}

func (p *Parser) leaveExprs(n int) {
	for ; n > 0; n-- {
		p.leaveExpr()
	}
}

func (p *Parser) enterTag() *Error {
	if p.template == nil {
		return nil
	}
	// one more: a tag inside MaxDepth nested block tags (the lexer's limit)
	return p.enterDepth(&p.template.tagDepth, "tags", 1)
}

func (p *Parser) leaveTag() {
	if p.template != nil {
		p.template.tagDepth--
	}
}

// sizeFilters estimate, before a filter runs, a lower bound of the size of
// its result in bytes (see RegisterFilterSize).
var sizeFilters = map[string]func(in, param *Value) int64{}

// RegisterFilterSize registers, for filter name, a function returning a
// lower bound of the bytes its result will take (0 when unknown,
// math.MaxInt64 when too large to count), so a budgeted render fails before
// the filter allocates. Call it from init.
func RegisterFilterSize(name string, fn func(in, param *Value) int64) {
	sizeFilters[name] = fn
}

func paddedSize(in, param *Value) int64 {
	n := int64(param.Integer())
	if l := int64(len(in.String())); l > n {
		return l
	}
	return n
}

// formatWidth is the largest number in a printf format: a lower bound of
// the width or precision it asks for.
func formatWidth(in, param *Value) int64 {
	s := param.String()
	var max int64
	for i := 0; i < len(s); {
		if s[i] < '0' || s[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n, err := strconv.ParseInt(s[i:j], 10, 64)
		if err != nil {
			return math.MaxInt64 // too large to parse
		}
		if n > max {
			max = n
		}
		i = j
	}
	return max
}

func init() {
	RegisterFilterSize("ljust", paddedSize)
	RegisterFilterSize("rjust", paddedSize)
	RegisterFilterSize("center", paddedSize)
	RegisterFilterSize("stringformat", formatWidth)
	RegisterFilterSize("join", func(in, param *Value) int64 {
		if !in.CanSlice() || in.Len() < 2 {
			return 0
		}
		seps, sep := int64(in.Len()-1), int64(len(param.String()))
		if sep != 0 && seps > math.MaxInt64/sep {
			return math.MaxInt64
		}
		return seps * sep
	})
	RegisterFilterSize("floatformat", func(in, param *Value) int64 {
		n := int64(param.Integer())
		if n < 0 {
			n = -n
		}
		return n
	})
}

// Lexer limits (cicdstatemgr patch 8): the parser's nesting limits would
// apply only after the whole template is lexed, and a megabyte of
// "((((" is a million tokens. The lexer already stops at MaxDepth open
// brackets in a tag, MaxDepth open block tags and MaxTagTokens tokens in
// one tag or variable.

// MaxTagTokens bounds the tokens of one {{ ... }} or {% ... %}.
var MaxTagTokens = 4096

// blockTags are the tags with an end tag.
var blockTags = map[string]bool{
	"autoescape": true, "block": true, "comment": true, "filter": true, "for": true,
	"if": true, "ifchanged": true, "ifequal": true, "ifnotequal": true, "macro": true,
	"spaceless": true, "with": true,
}

func (l *lexer) limit(e *BudgetError) {
	if l.errored {
		return
	}
	l.budgetErr = e
	l.errorf("%s", e.Error())
}

func (l *lexer) checkLimits(tok *Token) {
	if l.maxDepth <= 0 || l.tagStart >= len(l.tokens) {
		return
	}
	if tok.Typ == TokenSymbol {
		switch tok.Val {
		case "(", "[":
			l.brackets++
			if l.brackets > l.maxDepth {
				l.limit(&BudgetError{Budget: "depth", Limit: int64(l.maxDepth), Detail: "expressions nested too deeply"})
				return
			}
		case ")", "]":
			l.brackets--
		}
	}
	if MaxTagTokens > 0 && len(l.tokens)-l.tagStart > MaxTagTokens {
		l.limit(&BudgetError{Budget: "depth", Limit: int64(l.maxDepth),
			Detail: fmt.Sprintf("more than %d tokens in one tag or variable", MaxTagTokens)})
	}
}

// checkBlock counts block tags when a tag has been lexed.
func (l *lexer) checkBlock() {
	if l.maxDepth <= 0 || l.errored || l.tagStart+1 >= len(l.tokens) ||
		l.tokens[l.tagStart].Val != "{%" || l.tokens[l.tagStart+1].Typ != TokenIdentifier {
		return
	}
	name := l.tokens[l.tagStart+1].Val
	switch {
	case blockTags[name]:
		l.blocks++
		if l.blocks > l.maxDepth {
			l.limit(&BudgetError{Budget: "depth", Limit: int64(l.maxDepth), Detail: "tags nested too deeply"})
		}
	case strings.HasPrefix(name, "end"):
		l.blocks--
	}
}
