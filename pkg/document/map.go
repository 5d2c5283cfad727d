package document

// Map is a string-keyed map that remembers insertion order. Order matters to
// users: handlers run in YAML order and payload keys are posted in it.
type Map struct {
	keys []string
	vals map[string]any
}

// NewMap returns an empty map.
func NewMap() *Map { return &Map{vals: map[string]any{}} }

// Len is the number of keys.
func (m *Map) Len() int {
	if m == nil {
		return 0
	}
	return len(m.keys)
}

// Keys returns the keys in order. The slice must not be modified.
func (m *Map) Keys() []string {
	if m == nil {
		return nil
	}
	return m.keys
}

// Get returns the value at k.
func (m *Map) Get(k string) (any, bool) {
	if m == nil {
		return nil, false
	}
	v, ok := m.vals[k]
	return v, ok
}

// Has reports whether k is present.
func (m *Map) Has(k string) bool {
	_, ok := m.Get(k)
	return ok
}

// Set puts v at k; a new key goes last, an existing key keeps its place.
func (m *Map) Set(k string, v any) {
	if m.vals == nil {
		m.vals = map[string]any{}
	}
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

// Delete removes k.
func (m *Map) Delete(k string) {
	if _, ok := m.vals[k]; !ok {
		return
	}
	delete(m.vals, k)
	for i, key := range m.keys {
		if key == k {
			m.keys = append(m.keys[:i:i], m.keys[i+1:]...)
			break
		}
	}
}

// GetMap returns the value at k when it is a map.
func (m *Map) GetMap(k string) (*Map, bool) {
	v, ok := m.Get(k)
	if !ok {
		return nil, false
	}
	mm, ok := v.(*Map)
	return mm, ok
}

// GetString returns the value at k when it is a string.
func (m *Map) GetString(k string) (string, bool) {
	v, ok := m.Get(k)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

// Range calls fn for each entry in order until fn returns false.
func (m *Map) Range(fn func(k string, v any) bool) {
	if m == nil {
		return
	}
	for _, k := range m.keys {
		if !fn(k, m.vals[k]) {
			return
		}
	}
}

// Clone deep-copies a document value.
func Clone(v any) any {
	switch t := v.(type) {
	case *Map:
		if t == nil {
			return (*Map)(nil)
		}
		out := &Map{keys: make([]string, len(t.keys)), vals: make(map[string]any, len(t.vals))}
		copy(out.keys, t.keys)
		for k, vv := range t.vals {
			out.vals[k] = Clone(vv)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = Clone(e)
		}
		return out
	default:
		return v
	}
}

// CloneMap deep-copies a map.
func CloneMap(m *Map) *Map {
	if m == nil {
		return NewMap()
	}
	return Clone(m).(*Map)
}

// Truthy follows Python truthiness, which the original uses for every
// "is it set" decision: nil, false, 0, "", empty map and list are false.
func Truthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case int:
		return t != 0
	case int64:
		return t != 0
	case uint64:
		return t != 0
	case float64:
		return t != 0
	case string:
		return t != ""
	case []any:
		return len(t) > 0
	case *Map:
		return t.Len() > 0
	default:
		return true
	}
}
