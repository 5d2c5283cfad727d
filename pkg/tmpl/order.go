package tmpl

import (
	"fmt"
	"reflect"
	"sort"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/flosch/pongo2/v6"
)

// Templates see the context document as it is: *document.Map implements the
// forked pongo2's OrderedMap interface (third_party/pongo2/ordered.go), so
// pongo2 resolves keys, walks maps in document order ({% for k, v in m %}),
// measures them (length, truthiness) and tests keys (`in`) on the document
// itself, without a copy. Lists are the document's []any. The maps from_json
// makes are *document.Map too, so they keep the JSON text's order the same
// way.
//
// A Go map[string]any (which a caller may put into a context) has no order:
// pongo2 walks it, and the items, JSON and YAML filters write it, in sorted
// key order.

var _ pongo2.OrderedMap = (*document.Map)(nil)

// sortedKeys returns the keys of m sorted.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// toDocument converts a template value to a document value for the JSON and
// YAML filters: maps that are not *document.Map get their keys sorted, other
// Go integer types become int. A value that already is a document value is
// returned as it is (it is only read).
func toDocument(v any) (any, error) {
	if isDocument(v, 0) {
		return v, nil
	}
	return toDocumentDepth(v, 0)
}

const maxConvertDepth = 1000

// isDocument reports whether v is made of document values only (nil, bool,
// int, float64, string, []any and non-nil *document.Map), within
// maxConvertDepth levels.
func isDocument(v any, depth int) bool {
	if depth > maxConvertDepth {
		return false
	}
	switch t := v.(type) {
	case nil, bool, int, float64, string:
		return true
	case []any:
		for _, e := range t {
			if !isDocument(e, depth+1) {
				return false
			}
		}
		return true
	case *document.Map:
		if t == nil {
			return false // a nil map converts to null
		}
		ok := true
		t.Range(func(_ string, e any) bool {
			ok = isDocument(e, depth+1)
			return ok
		})
		return ok
	}
	return false
}

func toDocumentDepth(v any, depth int) (any, error) {
	if depth > maxConvertDepth {
		return nil, fmt.Errorf("value nested deeper than %d levels", maxConvertDepth)
	}
	switch t := v.(type) {
	case nil, bool, int, float64, string:
		return t, nil
	case *pongo2.Value:
		if t == nil {
			return nil, nil
		}
		return toDocumentDepth(t.Interface(), depth+1)
	case *document.Map:
		if t == nil {
			return nil, nil
		}
		out := document.NewMap()
		var err error
		t.Range(func(k string, e any) bool {
			var d any
			d, err = toDocumentDepth(e, depth+1)
			out.Set(k, d)
			return err == nil
		})
		return out, err
	case map[string]any:
		out := document.NewMap()
		for _, k := range sortedKeys(t) {
			d, err := toDocumentDepth(t[k], depth+1)
			if err != nil {
				return nil, err
			}
			out.Set(k, d)
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			d, err := toDocumentDepth(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = d
		}
		return out, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return int(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			d, err := toDocumentDepth(rv.Index(i).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = d
		}
		return out, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		keys := make([]string, 0, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			keys = append(keys, iter.Key().String())
		}
		sort.Strings(keys)
		out := document.NewMap()
		for _, k := range keys {
			kv := reflect.ValueOf(k).Convert(rv.Type().Key())
			d, err := toDocumentDepth(rv.MapIndex(kv).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out.Set(k, d)
		}
		return out, nil
	case reflect.Ptr, reflect.Interface:
		if rv.IsNil() {
			return nil, nil
		}
	}
	return nil, fmt.Errorf("object of type %T is not serializable", v)
}
