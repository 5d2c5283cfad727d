// Package tmpl is the sandboxed pongo2 template environment of cicdstatemgr:
// it renders the template strings found in config files, app pipeline
// configs and handler blocks against a template context built from the
// context data document, the way the original's jinja2 environment did.
//
// Rendering contract (docs/templates.md has the user-facing version):
//
//   - the text of all macros (the context's jinja2Macros.all) is put in front
//     of every template, so every macro is callable everywhere;
//   - one trailing newline of the template source is dropped;
//   - autoescaping is off;
//   - jinja2's Undefined rules: a missing last part renders "" and is false
//     ({{ state.missing }}), attribute or index access on an undefined or null
//     value is an error ({{ missing.x }}, {{ state.missing.x }});
//   - maps walk in document order ({% for k, v in m %}, the items filter);
//     templates read the context document in place, never copying or
//     changing it (order.go);
//   - floats print as JSON numbers (1.5, not 1.500000);
//   - the sandbox: no template files (include, ssi, import and extends are
//     banned, the loader refuses every file), no filter reads files, the
//     environment or the network;
//   - every render has a budget (Options, budget.go): steps, output size,
//     nesting depth and the caller's context; exceeding it is an *Error
//     whose cause is a *BudgetError.
//
// It uses a fork of pongo2 v6 (third_party/pongo2, see PATCHES.md there).
package tmpl

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/flosch/pongo2/v6"
)

// DefaultCacheSize is the number of compiled templates an Env keeps when
// Options.CacheSize is 0.
const DefaultCacheSize = 512

// MacrosKey is the context key whose map's "all" text is put in front of
// every template.
const MacrosKey = "jinja2Macros"

// bannedTags read files (include, ssi, import, extends), keep state across
// renders in the compiled template, which the cache shares between
// concurrent renders (ifchanged, cycle), or write unbounded text (lorem).
var bannedTags = []string{"include", "ssi", "import", "extends", "ifchanged", "cycle", "lorem"}

func init() {
	// Autoescaping is a pongo2-wide default; jinja2's default (off) is what
	// every template here expects.
	pongo2.SetAutoescape(false)
}

// Options configure an Env.
type Options struct {
	// CacheSize bounds the compiled-template cache (least recently used
	// templates are dropped); 0 means DefaultCacheSize, negative disables
	// the cache.
	CacheSize int

	// The render budget (docs/templates.md "Budgets"); 0 means the
	// package default (DefaultMaxSteps, ...). A negative MaxSteps or
	// MaxOutput is unlimited; the depths cannot be turned off (they keep
	// the Go stack bounded): a negative MaxDepth or MaxMacroDepth means
	// the pongo2 fork's own limits (pongo2.DefaultMaxDepth, 64, and
	// pongo2.MaxMacroDepth, 100).

	// MaxSteps bounds the steps of one render: node, variable and filter
	// evaluations, loop iterations, macro calls, plus one per 8 bytes of
	// text a filter, "+" or a macro builds and per 256 bytes of a string a
	// filter or comparison reads (pongo2.BytesPerStep, ScanBytesPerStep).
	MaxSteps int64
	// MaxOutput bounds the bytes of a render's output, of a macro's output
	// and of any string a filter or "+" builds.
	MaxOutput int64
	// MaxDepth bounds the nesting of expressions and of tags in a template
	// (checked when it is compiled).
	MaxDepth int
	// MaxMacroDepth bounds nested macro calls at run time.
	MaxMacroDepth int
}

// The default budget of a render (Options).
var (
	DefaultMaxSteps      int64 = 1_000_000
	DefaultMaxOutput     int64 = 1 << 20 // 1 MiB
	DefaultMaxDepth            = 64
	DefaultMaxMacroDepth       = 32
)

// Env renders templates. It is safe for concurrent use.
type Env struct {
	set    *pongo2.TemplateSet
	budget pongo2.Budget // without Context

	compileMu sync.Mutex // pongo2 compiles are not safe to run concurrently in one set

	mu       sync.Mutex
	capacity int
	lru      *list.List               // of *cacheEntry, most recent first
	cache    map[string]*list.Element // full source -> element
}

type cacheEntry struct {
	src string
	tpl *pongo2.Template
	err error
}

// New returns an Env.
func New(opts Options) *Env {
	capacity := opts.CacheSize
	if capacity == 0 {
		capacity = DefaultCacheSize
	}
	set := pongo2.NewSet("cicdstatemgr", noFiles{})
	for _, tag := range bannedTags {
		if err := set.BanTag(tag); err != nil {
			panic(fmt.Sprintf("tmpl: banning tag %q: %v", tag, err))
		}
	}
	set.MaxDepth = orDefault(opts.MaxDepth, DefaultMaxDepth)
	return &Env{
		set: set,
		budget: pongo2.Budget{
			MaxSteps:      orDefault(opts.MaxSteps, DefaultMaxSteps),
			MaxOutput:     orDefault(opts.MaxOutput, DefaultMaxOutput),
			MaxMacroDepth: orDefault(opts.MaxMacroDepth, DefaultMaxMacroDepth),
		},
		capacity: capacity,
		lru:      list.New(),
		cache:    map[string]*list.Element{},
	}
}

// noFiles is the template loader of the sandbox: there are no files.
type noFiles struct{}

func (noFiles) Abs(_, name string) string { return name }

func (noFiles) Get(path string) (io.Reader, error) {
	return nil, fmt.Errorf("templates cannot load files (sandbox): %q", path)
}

// Error is a failed render.
type Error struct {
	// Template is the template source as the caller gave it (without the
	// macro prefix).
	Template string
	// Err is the cause, with positions relative to Template.
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("template error: %v in template %q", e.Err, truncate(e.Template, 200))
}

func (e *Error) Unwrap() error { return e.Err }

func truncate(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// IsTemplate reports whether s contains template markup ("{{", "{%" or
// "{#"). Rendering a string without markup still drops one trailing newline
// and, behind the macro prefix, the leading whitespace, so this is no
// shortcut for Render.
func IsTemplate(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#")
}

// isWord says whether s matches ^[a-zA-Z0-9_]+$.
func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// Render is RenderContext without a deadline.
func (e *Env) Render(src string, ctx *document.Map) (string, error) {
	return e.RenderContext(context.Background(), src, ctx)
}

// RenderContext renders src against the template context ctx (nil is an empty
// context). When ctx has the key jinja2Macros holding a map with a string
// "all", that text is put in front of src. Top-level keys that are not
// identifiers (^[a-zA-Z0-9_]+$, e.g. "set-values") are left out. Failures are
// returned as *Error; RenderContext does not panic. A render stops when it
// exceeds the Env's budget or when rctx is done: the *Error's cause is then a
// *BudgetError (errors.As).
func (e *Env) RenderContext(rctx context.Context, src string, ctx *document.Map) (out string, err error) {
	macros := macroPrefix(ctx)
	full := dropTrailingNewline(macros + src)

	defer func() {
		if r := recover(); r != nil {
			out, err = "", &Error{Template: src, Err: fmt.Errorf("internal template engine failure: %v", r)}
		}
	}()

	tpl, cerr := e.compile(full)
	if cerr != nil {
		return "", &Error{Template: src, Err: relocate(cerr, macros)}
	}

	// The document's values go to pongo2 as they are (see order.go): only
	// the top level is a new map, pongo2's context.
	pctx := make(pongo2.Context, ctx.Len())
	ctx.Range(func(k string, v any) bool {
		if isWord(k) {
			pctx[k] = v
		}
		return true
	})

	budget := e.budget
	budget.Context = rctx
	out, xerr := tpl.ExecuteBudget(pctx, budget)
	if xerr != nil {
		return "", &Error{Template: src, Err: relocate(xerr, macros)}
	}
	if err := chargeOutput(rctx, len(out)); err != nil {
		return "", &Error{Template: src, Err: err}
	}
	return out, nil
}

func macroPrefix(ctx *document.Map) string {
	v, ok := ctx.Get(MacrosKey)
	if !ok {
		return ""
	}
	var all any
	switch m := v.(type) {
	case *document.Map:
		all, _ = m.Get("all")
	case map[string]any:
		all = m["all"]
	}
	s, _ := all.(string)
	return s
}

// dropTrailingNewline drops one trailing newline (jinja2
// keep_trailing_newline=False).
func dropTrailingNewline(s string) string {
	if strings.HasSuffix(s, "\r\n") {
		return s[:len(s)-2]
	}
	return strings.TrimSuffix(s, "\n")
}

// compile returns the compiled template of src, from the cache when it is
// there. Compile failures are cached too (they are deterministic).
func (e *Env) compile(src string) (*pongo2.Template, error) {
	if e.capacity < 0 {
		e.compileMu.Lock()
		defer e.compileMu.Unlock()
		return e.set.FromString(src)
	}
	if ent, ok := e.cached(src); ok {
		return ent.tpl, ent.err
	}
	e.compileMu.Lock()
	defer e.compileMu.Unlock()
	if ent, ok := e.cached(src); ok { // compiled while we waited
		return ent.tpl, ent.err
	}
	tpl, err := e.set.FromString(src)
	e.mu.Lock()
	e.cache[src] = e.lru.PushFront(&cacheEntry{src: src, tpl: tpl, err: err})
	for e.lru.Len() > e.capacity {
		last := e.lru.Back()
		e.lru.Remove(last)
		delete(e.cache, last.Value.(*cacheEntry).src)
	}
	e.mu.Unlock()
	return tpl, err
}

func (e *Env) cached(src string) (*cacheEntry, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	el, ok := e.cache[src]
	if !ok {
		return nil, false
	}
	e.lru.MoveToFront(el)
	return el.Value.(*cacheEntry), true
}

// CacheLen is the number of compiled templates in the cache.
func (e *Env) CacheLen() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lru.Len()
}

// renderError is the cause of an Error: pongo2's message with the position
// moved from the macros+src text to the user's template.
type renderError struct {
	msg string
	err error
}

func (e *renderError) Error() string { return e.msg }
func (e *renderError) Unwrap() error { return e.err }

func relocate(err error, macros string) error {
	var perr *pongo2.Error
	if !errors.As(err, &perr) || perr.OrigError == nil {
		return err
	}
	// Errors inside macro calls come wrapped once per call level: the
	// message is the innermost one's, and when that is inside the macros
	// the outermost position in the user's template is named too.
	chain := []*pongo2.Error{perr}
	for {
		inner, ok := chain[len(chain)-1].OrigError.(*pongo2.Error)
		if !ok || inner.OrigError == nil {
			break
		}
		chain = append(chain, inner)
	}
	innermost := chain[len(chain)-1]
	msg := strings.TrimSuffix(innermost.OrigError.Error(), ".")
	where, inMacros := position(innermost, macros)
	if inMacros {
		for _, e := range chain {
			if w, m := position(e, macros); w != "" && !m {
				where += ", called from " + w
				break
			}
		}
	}
	if where == "" {
		return &renderError{msg: msg, err: err}
	}
	return &renderError{msg: fmt.Sprintf("%s (%s)", msg, where), err: err}
}

// position describes where e happened, relative to the user's template or
// in the macro prefix.
func position(e *pongo2.Error, macros string) (where string, inMacros bool) {
	if e.Line <= 0 {
		return "", false
	}
	macroLines := strings.Count(macros, "\n")
	lastMacroLine := len(macros) - strings.LastIndex(macros, "\n") - 1 // bytes, like pongo2's columns
	line, col := e.Line, e.Column
	if line <= macroLines || (macros != "" && line == macroLines+1 && col <= lastMacroLine) {
		where = fmt.Sprintf("macros (jinja2Macros.all) line %d column %d", line, col)
		inMacros = true
	} else {
		if line == macroLines+1 {
			col -= lastMacroLine
		}
		where = fmt.Sprintf("line %d column %d", line-macroLines, col)
	}
	if e.Token != nil && e.Token.Val != "" {
		where += fmt.Sprintf(" near %q", truncate(e.Token.Val, 40))
	}
	return where, inMacros
}
