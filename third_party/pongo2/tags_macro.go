package pongo2

import (
	"bytes"
	"fmt"
)

// cicdstatemgr patch: MaxMacroDepth bounds nested macro calls.
var MaxMacroDepth = 100

type tagMacroNode struct {
	position  *Token
	name      string
	argsOrder []string
	args      map[string]IEvaluator
	exported  bool

	wrapper *NodeWrapper
}

func (node *tagMacroNode) Execute(ctx *ExecutionContext, writer TemplateWriter) *Error {
	ctx.Private[node.name] = func(args ...*Value) (*Value, error) {
		return node.call(ctx, args...)
	}

	return nil
}

func (node *tagMacroNode) call(ctx *ExecutionContext, args ...*Value) (*Value, error) {
	argsCtx := make(Context)

	for k, v := range node.args {
		// cicdstatemgr patch: as in jinja2, a default is evaluated only
		// when the caller did not pass that argument (with patch 1, a
		// default naming an undefined value would otherwise always fail).
		if passed(node.argsOrder, k, len(args)) {
			continue
		}
		if v == nil {
			// User did not provided a default value
			argsCtx[k] = nil
		} else {
			// Evaluate the default value
			valueExpr, err := v.Evaluate(ctx)
			if err != nil {
				ctx.Logf(err.Error())
				return AsSafeValue(""), err
			}

			argsCtx[k] = valueExpr
		}
	}

	if len(args) > len(node.argsOrder) {
		// Too many arguments, we're ignoring them and just logging into debug mode.
		err := ctx.Error(fmt.Sprintf("Macro '%s' called with too many arguments (%d instead of %d).",
			node.name, len(args), len(node.argsOrder)), nil).updateFromTokenIfNeeded(ctx.template, node.position)

		return AsSafeValue(""), err
	}

	// Make a context for the macro execution
	macroCtx := NewChildExecutionContext(ctx)

	// cicdstatemgr patch: endless macro recursion would overflow the Go
	// stack, a fatal error no recover() catches.
	if macroCtx.macroDepth == nil {
		macroCtx.macroDepth = new(int)
	}
	*macroCtx.macroDepth++
	defer func() { *macroCtx.macroDepth-- }()
	// cicdstatemgr patch 8: within a budget, the budget's depth applies and
	// a call is a step.
	maxDepth := MaxMacroDepth
	if ctx.budget != nil && ctx.budget.b.MaxMacroDepth > 0 {
		maxDepth = ctx.budget.b.MaxMacroDepth
	}
	if *macroCtx.macroDepth > maxDepth {
		berr := &BudgetError{Budget: "depth", Limit: int64(maxDepth), Detail: fmt.Sprintf("macro '%s': calls nested too deeply", node.name)}
		if ctx.budget != nil {
			berr = ctx.budget.fail(berr)
		}
		return AsSafeValue(""), ctx.OrigError(berr, nil).updateFromTokenIfNeeded(ctx.template, node.position)
	}
	// the call copies the caller's private context: a step per entry
	if err := ctx.steps(MacroCallSteps+len(ctx.Private), node.position); err != nil {
		return AsSafeValue(""), err
	}

	// Register all arguments in the private context
	macroCtx.Private.Update(argsCtx)

	for idx, argValue := range args {
		macroCtx.Private[node.argsOrder[idx]] = argValue.Interface()
	}

	var b bytes.Buffer
	err := node.wrapper.Execute(macroCtx, macroCtx.newBuffer(&b)) // cicdstatemgr patch 8
	if err == nil {
		err = ctx.built(b.Len(), fmt.Sprintf("output of macro '%s'", node.name), node.position)
	}
	if err != nil {
		return AsSafeValue(""), err.updateFromTokenIfNeeded(ctx.template, node.position)
	}

	return AsSafeValue(b.String()), nil
}

// cicdstatemgr patch: passed reports whether argument name is among the
// first n (positional) arguments.
func passed(argsOrder []string, name string, n int) bool {
	for i := 0; i < n && i < len(argsOrder); i++ {
		if argsOrder[i] == name {
			return true
		}
	}
	return false
}

func tagMacroParser(doc *Parser, start *Token, arguments *Parser) (INodeTag, *Error) {
	macroNode := &tagMacroNode{
		position: start,
		args:     make(map[string]IEvaluator),
	}

	nameToken := arguments.MatchType(TokenIdentifier)
	if nameToken == nil {
		return nil, arguments.Error("Macro-tag needs at least an identifier as name.", nil)
	}
	macroNode.name = nameToken.Val

	if arguments.MatchOne(TokenSymbol, "(") == nil {
		return nil, arguments.Error("Expected '('.", nil)
	}

	for arguments.Match(TokenSymbol, ")") == nil {
		argNameToken := arguments.MatchType(TokenIdentifier)
		if argNameToken == nil {
			return nil, arguments.Error("Expected argument name as identifier.", nil)
		}
		macroNode.argsOrder = append(macroNode.argsOrder, argNameToken.Val)

		if arguments.Match(TokenSymbol, "=") != nil {
			// Default expression follows
			argDefaultExpr, err := arguments.ParseExpression()
			if err != nil {
				return nil, err
			}
			macroNode.args[argNameToken.Val] = argDefaultExpr
		} else {
			// No default expression
			macroNode.args[argNameToken.Val] = nil
		}

		if arguments.Match(TokenSymbol, ")") != nil {
			break
		}
		if arguments.Match(TokenSymbol, ",") == nil {
			return nil, arguments.Error("Expected ',' or ')'.", nil)
		}
	}

	if arguments.Match(TokenKeyword, "export") != nil {
		macroNode.exported = true
	}

	if arguments.Remaining() > 0 {
		return nil, arguments.Error("Malformed macro-tag.", nil)
	}

	// Body wrapping
	wrapper, endargs, err := doc.WrapUntilTag("endmacro")
	if err != nil {
		return nil, err
	}
	macroNode.wrapper = wrapper

	if endargs.Count() > 0 {
		return nil, endargs.Error("Arguments not allowed here.", nil)
	}

	if macroNode.exported {
		// Now register the macro if it wants to be exported
		_, has := doc.template.exportedMacros[macroNode.name]
		if has {
			return nil, doc.Error(fmt.Sprintf("another macro with name '%s' already exported", macroNode.name), start)
		}
		doc.template.exportedMacros[macroNode.name] = macroNode
	}

	return macroNode, nil
}

func init() {
	RegisterTag("macro", tagMacroParser)
}
