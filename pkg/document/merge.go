package document

import "fmt"

// Merge deep-merges b over a as the original's dict_merge does (see
// docs/compatibility.md, "App pipeline config") and
// returns a new map; a and b are not modified:
//   - a key that is missing or falsy in a takes b's value, whatever its type;
//   - values of different types are an error (an app cannot turn a base map
//     into a string or null);
//   - two maps merge recursively; anything else (lists included) is replaced.
//
// Key order: a's keys first, then b's new keys in b's order.
func Merge(a, b *Map) (*Map, error) {
	return merge(a, b, "")
}

func merge(a, b *Map, prefix string) (*Map, error) {
	out := CloneMap(a)
	var err error
	b.Range(func(k string, bv any) bool {
		av, _ := out.Get(k)
		switch {
		case !Truthy(av):
			out.Set(k, Clone(bv))
		case mergeType(av) != mergeType(bv):
			err = fmt.Errorf("cannot merge %q: a %s cannot be overridden by a %s", prefix+k, TypeName(av), TypeName(bv))
			return false
		case mergeType(av) == "map":
			var m *Map
			m, err = merge(av.(*Map), bv.(*Map), prefix+k+".")
			if err != nil {
				return false
			}
			out.Set(k, m)
		default:
			out.Set(k, Clone(bv))
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// mergeType mirrors Python's type() comparison: int and float differ, and
// bool is its own type.
func mergeType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case int, int64, uint64:
		return "int"
	case float64:
		return "float"
	case string:
		return "string"
	case []any:
		return "list"
	case *Map:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}
