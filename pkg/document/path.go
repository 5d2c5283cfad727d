package document

import (
	"fmt"
	"strconv"
	"strings"
)

// A Path is a parsed read expression in the jsonpath-ng subset the original
// supports: a.b, a[2], a[-1], a[*].b, a.*, $..x, $, ['quoted key'].
type Path struct {
	expr  string
	steps []step
}

type stepKind int

const (
	stepField stepKind = iota
	stepIndex
	stepWildcard
	stepDescend // recursive descent; the step that follows names what to find
	stepSlice
)

type step struct {
	kind       stepKind
	name       string
	index      int
	start, end *int
}

// String returns the expression the path was parsed from.
func (p *Path) String() string { return p.expr }

// ParsePath parses a read expression.
func ParsePath(expr string) (*Path, error) {
	p := &Path{expr: expr}
	s := strings.TrimSpace(expr)
	if s == "" {
		return nil, fmt.Errorf("empty path")
	}
	i := 0
	if s[0] == '$' {
		i = 1
	}
	needSep := false
	for i < len(s) {
		c := s[i]
		switch {
		case c == '.' && strings.HasPrefix(s[i:], ".."):
			i += 2
			p.steps = append(p.steps, step{kind: stepDescend})
			needSep = false
			continue
		case c == '.':
			if i == len(s)-1 {
				return nil, fmt.Errorf("path %q ends with '.'", expr)
			}
			i++
			needSep = false
			continue
		case c == '[':
			end, st, err := parseBracket(s, i)
			if err != nil {
				return nil, fmt.Errorf("path %q: %w", expr, err)
			}
			p.steps = append(p.steps, st)
			i = end
			needSep = true
			continue
		}
		if needSep {
			return nil, fmt.Errorf("path %q: unexpected %q at offset %d", expr, c, i)
		}
		if c == '*' {
			p.steps = append(p.steps, step{kind: stepWildcard})
			i++
			needSep = true
			continue
		}
		j := i
		for j < len(s) && isNameChar(s[j]) {
			j++
		}
		if j == i {
			return nil, fmt.Errorf("path %q: unexpected %q at offset %d", expr, c, i)
		}
		p.steps = append(p.steps, step{kind: stepField, name: s[i:j]})
		i = j
		needSep = true
	}
	if n := len(p.steps); n > 0 && p.steps[n-1].kind == stepDescend {
		return nil, fmt.Errorf("path %q ends with '..'", expr)
	}
	return p, nil
}

func isNameChar(c byte) bool {
	return c == '_' || c == '-' || c == '@' || c >= 0x80 ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func parseBracket(s string, i int) (int, step, error) {
	j := strings.IndexByte(s[i:], ']')
	inner := ""
	if i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '"') {
		q := s[i+1]
		k := strings.IndexByte(s[i+2:], q)
		if k < 0 || i+2+k+1 >= len(s) || s[i+2+k+1] != ']' {
			return 0, step{}, fmt.Errorf("unterminated quoted key")
		}
		return i + 2 + k + 2, step{kind: stepField, name: s[i+2 : i+2+k]}, nil
	}
	if j < 0 {
		return 0, step{}, fmt.Errorf("missing ']'")
	}
	inner = strings.TrimSpace(s[i+1 : i+j])
	end := i + j + 1
	if inner == "*" {
		return end, step{kind: stepWildcard}, nil
	}
	if a, b, ok := strings.Cut(inner, ":"); ok {
		st := step{kind: stepSlice}
		for k, part := range []string{a, b} {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			n, err := strconv.Atoi(part)
			if err != nil {
				return 0, step{}, fmt.Errorf("bad slice %q", inner)
			}
			if k == 0 {
				st.start = &n
			} else {
				st.end = &n
			}
		}
		return end, st, nil
	}
	n, err := strconv.Atoi(inner)
	if err != nil {
		return 0, step{}, fmt.Errorf("bad index %q", inner)
	}
	return end, step{kind: stepIndex, index: n}, nil
}

// Find returns every value the path matches, in document order.
func (p *Path) Find(root any) []any {
	cur := []any{root}
	for i := 0; i < len(p.steps); i++ {
		st := p.steps[i]
		if st.kind == stepDescend {
			i++
			next := p.steps[i]
			var out []any
			for _, v := range cur {
				descend(v, func(node any) {
					out = append(out, apply(next, node)...)
				})
			}
			cur = out
			continue
		}
		var out []any
		for _, v := range cur {
			out = append(out, apply(st, v)...)
		}
		cur = out
		if len(cur) == 0 {
			return nil
		}
	}
	return cur
}

// descend visits v and everything below it, parents before children.
func descend(v any, visit func(any)) {
	visit(v)
	switch t := v.(type) {
	case *Map:
		t.Range(func(_ string, c any) bool { descend(c, visit); return true })
	case []any:
		for _, c := range t {
			descend(c, visit)
		}
	}
}

func apply(st step, v any) []any {
	switch st.kind {
	case stepField:
		if m, ok := v.(*Map); ok {
			if c, ok := m.Get(st.name); ok {
				return []any{c}
			}
		}
	case stepIndex:
		if l, ok := v.([]any); ok {
			i := st.index
			if i < 0 {
				i += len(l)
			}
			if i >= 0 && i < len(l) {
				return []any{l[i]}
			}
		}
	case stepWildcard:
		switch t := v.(type) {
		case *Map:
			out := make([]any, 0, t.Len())
			t.Range(func(_ string, c any) bool { out = append(out, c); return true })
			return out
		case []any:
			return append([]any(nil), t...)
		}
	case stepSlice:
		if l, ok := v.([]any); ok {
			start, end := 0, len(l)
			if st.start != nil {
				start = clampIndex(*st.start, len(l))
			}
			if st.end != nil {
				end = clampIndex(*st.end, len(l))
			}
			if start < end {
				return append([]any(nil), l[start:end]...)
			}
		}
	}
	return nil
}

func clampIndex(i, n int) int {
	if i < 0 {
		i += n
	}
	if i < 0 {
		return 0
	}
	if i > n {
		return n
	}
	return i
}

// Lookup evaluates expr against root as the original's get does: no match is
// (nil, false), one match is that value, several are a list of them.
func Lookup(root any, expr string) (any, bool, error) {
	p, err := ParsePath(expr)
	if err != nil {
		return nil, false, err
	}
	v, ok := p.Value(root)
	return v, ok, nil
}

// Value is Find folded the original's way: one match is the value itself,
// several become a list.
func (p *Path) Value(root any) (any, bool) {
	found := p.Find(root)
	switch len(found) {
	case 0:
		return nil, false
	case 1:
		return found[0], true
	default:
		return found, true
	}
}
