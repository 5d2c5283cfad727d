package document

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Marker is the intent suffix of the last path segment of an assignment.
type Marker int

const (
	// NoMarker assigns the value.
	NoMarker Marker = iota
	// ListMarker ("key[]") appends comma-separated items, duplicates kept.
	ListMarker
	// SetMarker ("key{}") appends comma-separated items, duplicates dropped.
	SetMarker
)

// Assignment is one parsed "path=value" pair.
type Assignment struct {
	Path  string
	Value any
}

// ParseAssignment splits "path=value" on the first '='. Both sides are
// trimmed. An empty path is an error; allowEmptyValue says whether "path="
// stores "" (the CustomRun contract) or is an error (the original's CLI
// skips it with a warning).
func ParseAssignment(s string, allowEmptyValue bool) (Assignment, error) {
	k, v, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return Assignment{}, fmt.Errorf("%q is not of the form path=value", clip(s))
	}
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if k == "" {
		return Assignment{}, fmt.Errorf("%q has an empty path", clip(s))
	}
	if v == "" && !allowEmptyValue {
		return Assignment{}, fmt.Errorf("%q has an empty value", clip(s))
	}
	return Assignment{Path: k, Value: v}, nil
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// SetPath applies one assignment to m with the rules of the original's
// recursive_set (docs/compatibility.md, "`--set`"):
//   - the path is split on '.', with no escaping and no [n] indexing;
//   - a last segment ending in "[]" appends the comma-separated items of a
//     string value to a list ("[]" alone clears it), "{}" does the same
//     without duplicates;
//   - a missing intermediate key becomes a map; an intermediate value that
//     is not a map is replaced by the value and the rest of the path dropped.
func SetPath(m *Map, path string, value any) error {
	if strings.TrimSpace(path) == "" {
		return fmt.Errorf("empty path")
	}
	if !utf8.ValidString(path) {
		return fmt.Errorf("path %q is not valid UTF-8", path)
	}
	segs := strings.Split(path, ".")
	for _, s := range segs[:len(segs)-1] {
		if s == "" {
			return fmt.Errorf("path %q has an empty segment", path)
		}
	}
	return setSegments(m, path, segs, value)
}

func splitMarker(seg string) (string, Marker) {
	switch {
	case strings.HasSuffix(seg, "[]"):
		return strings.TrimSuffix(seg, "[]"), ListMarker
	case strings.HasSuffix(seg, "{}"):
		return strings.TrimSuffix(seg, "{}"), SetMarker
	}
	return seg, NoMarker
}

func setSegments(m *Map, path string, segs []string, value any) error {
	key, marker := splitMarker(segs[0])
	if key == "" {
		return fmt.Errorf("path %q has an empty segment", path)
	}
	if len(segs) == 1 {
		if marker == NoMarker {
			m.Set(key, value)
			return nil
		}
		return appendItems(m, path, key, marker, value)
	}
	existing, ok := m.Get(key)
	if ok {
		if child, isMap := existing.(*Map); isMap && marker == NoMarker {
			return setSegments(child, path, segs[1:], value)
		}
		// The original replaces a non-map on the way with the value and
		// drops the rest of the path; parity keeps that.
		m.Set(key, value)
		return nil
	}
	child := NewMap()
	m.Set(key, child)
	return setSegments(child, path, segs[1:], value)
}

func appendItems(m *Map, path, key string, marker Marker, value any) error {
	existing, _ := m.Get(key)
	var list []any
	switch t := existing.(type) {
	case []any:
		list = t
	default:
		if Truthy(existing) {
			return fmt.Errorf("cannot append to %q: it holds a %s, not a list", strings.TrimSuffix(strings.TrimSuffix(path, "[]"), "{}"), TypeName(existing))
		}
	}
	var items []any
	switch v := value.(type) {
	case string:
		if v == "[]" {
			m.Set(key, []any{})
			return nil
		}
		for _, s := range strings.Split(v, ",") {
			items = append(items, s)
		}
	case []any:
		items = v
	default:
		items = []any{v}
	}
	out := make([]any, 0, len(list)+len(items))
	out = append(out, list...)
	out = append(out, items...)
	if marker == SetMarker {
		out = dedupe(out)
	}
	m.Set(key, out)
	return nil
}

func dedupe(in []any) []any {
	seen := map[string]bool{}
	out := in[:0:0]
	for _, v := range in {
		k := TypeName(v) + ":" + MustJSON(v, JSONStyle{})
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, v)
	}
	return out
}
