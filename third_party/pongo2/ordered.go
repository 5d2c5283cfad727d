package pongo2

import "reflect"

// cicdstatemgr patch: ordered maps and value text (see PATCHES.md).

// OrderedMap is a string-keyed map that knows the order of its keys. pongo2
// treats a value implementing it as a map, without copying it:
//
//   - attribute and subscript access (m.key, m["key"]) look up keys with Get;
//     the value's Go methods are not reachable from a template;
//   - a for-loop walks Keys in their order (backwards with `reversed`;
//     `sorted` sorts the keys);
//   - the length filter, truthiness (if, not, default, ...) and `in` (key
//     membership) use Len and Get.
//
// A nil pointer implementing OrderedMap is null. Implementations are only
// read, never changed; they must not change while a template uses them.
type OrderedMap interface {
	// Keys returns the keys in order. pongo2 does not modify the slice.
	Keys() []string
	// Get returns the value at key and whether the key is present.
	Get(key string) (any, bool)
	// Len is the number of keys.
	Len() int
}

// FormatValue, when set, gives the text of a value pongo2 has no text of its
// own for: a value that is not a string, number, bool or fmt.Stringer (a map,
// slice, array, struct, OrderedMap, ...). It returns false to leave the
// value to pongo2, which prints "<T Value>". It is used when a value is
// printed ({{ v }}), by filters that take the text of a value and by
// stringformat. It must be safe for concurrent use.
var FormatValue func(v any) (string, bool)

var typeOfOrderedMap = reflect.TypeOf((*OrderedMap)(nil)).Elem()

// asOrderedMap returns rv as an OrderedMap when it holds a non-nil one.
func asOrderedMap(rv reflect.Value) (OrderedMap, bool) {
	if rv.IsValid() && rv.Kind() == reflect.Interface {
		rv = rv.Elem()
	}
	// NumMethod first: strings, numbers, []any, map[string]any have none,
	// so the common values skip the interface conversion.
	if !rv.IsValid() || rv.NumMethod() == 0 || !rv.CanInterface() {
		return nil, false
	}
	if rv.Kind() == reflect.Ptr && rv.IsNil() {
		return nil, false
	}
	om, ok := rv.Interface().(OrderedMap)
	return om, ok
}

// isNilOrderedMap reports whether rv is a nil pointer implementing
// OrderedMap (such a value is null to templates).
func isNilOrderedMap(rv reflect.Value) bool {
	return rv.IsValid() && rv.Kind() == reflect.Ptr && rv.IsNil() && rv.Type().Implements(typeOfOrderedMap)
}

// orderedMap returns the value as an OrderedMap when it holds a non-nil one.
func (v *Value) orderedMap() (OrderedMap, bool) {
	return asOrderedMap(v.val)
}

// formatted is FormatValue's text for the value, for the values pongo2 has
// no text of its own for.
func (v *Value) formatted() (string, bool) {
	if FormatValue == nil || v.IsNil() {
		return "", false
	}
	if _, ok := v.Interface().(interface{ String() string }); ok {
		return "", false
	}
	switch v.getResolvedValue().Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "", false
	}
	return FormatValue(v.Interface())
}

// formattedText hands FormatValue's text to fmt (stringformat) as a
// fmt.Stringer.
type formattedText string

func (t formattedText) String() string { return string(t) }
