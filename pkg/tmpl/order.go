package tmpl

import (
	"fmt"
	"reflect"
	"sort"
	"sync"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/flosch/pongo2/v6"
)

// Templates see document maps as map[string]any (pongo2 resolves attributes
// on Go maps only). A Go map has no order, so the key order of every map made
// from a *document.Map is kept in a registry keyed by the map's identity (its
// reflect pointer). The forked pongo2 asks the registry through the
// pongo2.MapKeyOrder hook when a for-loop walks a map without `sorted`; the
// `items` filter and the JSON/YAML filters ask it too.
//
// Every registered map is also referenced by its entry, so its address cannot
// be reused for another map while the entry exists. Entries are removed when
// the render that made them ends: maps converted from the context belong to
// that render; maps made by filters (from_json, items) cannot tell which
// render runs them (pongo2 filters get no context), so they are kept until
// every render that was running when they were made has ended.

type orderEntry struct {
	keys []string
	ref  tmap // keeps the map (and so its address) alive
}

type orderRegistry struct {
	mu      sync.RWMutex
	entries map[uintptr]orderEntry
	lastSeq uint64              // sequence number of the last render started
	active  map[uint64]struct{} // renders running now
	orphans []orphan            // maps made by filters
}

type orphan struct {
	ptr uintptr
	tag uint64 // lastSeq when it was made: a render <= tag made it
}

var registry = &orderRegistry{
	entries: map[uintptr]orderEntry{},
	active:  map[uint64]struct{}{},
}

func init() {
	pongo2.MapKeyOrder = mapKeyOrder
}

// mapKeyOrder is the pongo2.MapKeyOrder hook: the registered order of a map
// made from a document, else its keys sorted (deterministic output rather
// than Go's random map order).
func mapKeyOrder(m reflect.Value) []string {
	if m.Kind() != reflect.Map || m.Type().Key().Kind() != reflect.String {
		return nil
	}
	if keys, ok := registry.lookup(m.Pointer()); ok {
		return keys
	}
	keys := make([]string, 0, m.Len())
	iter := m.MapRange()
	for iter.Next() {
		keys = append(keys, iter.Key().String())
	}
	sort.Strings(keys)
	return keys
}

func (r *orderRegistry) lookup(ptr uintptr) ([]string, bool) {
	r.mu.RLock()
	e, ok := r.entries[ptr]
	r.mu.RUnlock()
	return e.keys, ok
}

// orderedKeys returns the keys of m in document order when it is known,
// sorted otherwise.
func orderedKeys(m map[string]any) []string {
	if keys, ok := registry.lookup(reflect.ValueOf(m).Pointer()); ok && len(keys) == len(m) {
		return keys
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// session is one render's set of registered maps.
type session struct {
	seq     uint64
	pending map[uintptr]orderEntry
}

func (r *orderRegistry) begin() *session {
	r.mu.Lock()
	r.lastSeq++
	s := &session{seq: r.lastSeq}
	r.active[s.seq] = struct{}{}
	r.mu.Unlock()
	return s
}

// commit registers the maps converted so far.
func (r *orderRegistry) commit(s *session) {
	if len(s.pending) == 0 {
		return
	}
	r.mu.Lock()
	for p, e := range s.pending {
		r.entries[p] = e
	}
	r.mu.Unlock()
}

// end removes the render's maps, and the filter-made maps no running render
// can still use.
func (r *orderRegistry) end(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range s.pending {
		delete(r.entries, p)
	}
	delete(r.active, s.seq)
	if len(r.orphans) == 0 {
		return
	}
	minActive := r.lastSeq + 1
	for seq := range r.active {
		if seq < minActive {
			minActive = seq
		}
	}
	kept := r.orphans[:0]
	for _, o := range r.orphans {
		if o.tag < minActive {
			delete(r.entries, o.ptr)
		} else {
			kept = append(kept, o)
		}
	}
	for i := len(kept); i < len(r.orphans); i++ {
		r.orphans[i] = orphan{}
	}
	r.orphans = kept
}

// registerOrphans registers maps made by a filter during some render.
func (r *orderRegistry) registerOrphans(pending map[uintptr]orderEntry) {
	if len(pending) == 0 {
		return
	}
	r.mu.Lock()
	for p, e := range pending {
		r.entries[p] = e
		r.orphans = append(r.orphans, orphan{ptr: p, tag: r.lastSeq})
	}
	r.mu.Unlock()
}

// size reports the number of registered maps (for tests).
func (r *orderRegistry) size() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.entries)
}

// converter turns document values into values pongo2 can resolve.
type converter struct {
	pending map[uintptr]orderEntry
	memo    map[*document.Map]tmap
}

func newConverter() *converter {
	return &converter{pending: map[uintptr]orderEntry{}, memo: map[*document.Map]tmap{}}
}

// toTemplate converts a document value for pongo2: *document.Map becomes a
// registered tmap, lists become tlists of converted elements, scalars stay as
// they are.
func (c *converter) toTemplate(v any) any {
	switch t := v.(type) {
	case *document.Map:
		if t == nil {
			return nil
		}
		if m, ok := c.memo[t]; ok {
			return m
		}
		m := make(tmap, t.Len())
		c.memo[t] = m
		keys := append([]string(nil), t.Keys()...)
		for _, k := range keys {
			v, _ := t.Get(k)
			m[k] = c.toTemplate(v)
		}
		c.pending[reflect.ValueOf(m).Pointer()] = orderEntry{keys: keys, ref: m}
		return m
	case []any:
		out := make(tlist, len(t))
		for i, e := range t {
			out[i] = c.toTemplate(e)
		}
		return out
	case map[string]any:
		// A caller's plain map: convert nested document values; it iterates
		// sorted (no order to keep).
		out := make(tmap, len(t))
		for k, e := range t {
			out[k] = c.toTemplate(e)
		}
		return out
	default:
		return v
	}
}

// fromFilter converts a value a filter produces (maps made by a filter are
// registered until no render that may use them runs).
func fromFilter(v any) any {
	c := newConverter()
	out := c.toTemplate(v)
	registry.registerOrphans(c.pending)
	return out
}

// toDocument converts a template value back to a document value, keeping
// the order of maps that came from a document. Maps without a known order
// get their keys sorted.
func toDocument(v any) (any, error) {
	return toDocumentDepth(v, 0)
}

const maxConvertDepth = 1000

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
	case tmap:
		return toDocumentDepth(map[string]any(t), depth)
	case tlist:
		return toDocumentDepth([]any(t), depth)
	case map[string]any:
		out := document.NewMap()
		for _, k := range orderedKeys(t) {
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
		out := document.NewMap()
		for _, k := range mapKeyOrder(rv) {
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
