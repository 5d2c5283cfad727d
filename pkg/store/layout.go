package store

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// Storage layout of a document (a Redis hash at DocKey(ref), <prefix>:{<ns>/<id>}:ctx):
//
//	order        {"v":1,"keys":[top-level keys],"state":[keys of state]}
//	t:<key>      the value of top-level key <key>, compact JSON
//	s:<key>      the value of state.<key>, compact JSON
//
// The top-level "state" is split into one field per key when it is a map (then
// "state" is in the order field, and there is no t:state); any other state is
// the t:state field. A small operation so reads and writes only the fields it
// needs, whatever the size of the rest of the document.
//
// Documents written by earlier versions as one JSON string (at LegacyDocKey,
// which Migrate renames to DocKey) are still read, and are rewritten as a hash by
// their next Update.
const (
	fieldOrder    = "order"
	topPrefix     = "t:"
	statePrefix   = "s:"
	stateKey      = "state"
	layoutVersion = 1
)

// layout is the decoded order field.
type layout struct {
	keys  []string // top-level keys, in order
	split bool     // state is a map stored as s:<key> fields
	state []string // keys of state, in order, when split
}

func topField(k string) string   { return topPrefix + k }
func stateField(k string) string { return statePrefix + k }

func (l *layout) encode() []byte {
	m := document.NewMap()
	m.Set("v", layoutVersion)
	m.Set("keys", stringList(l.keys))
	if l.split {
		m.Set(stateKey, stringList(l.state))
	}
	b, _ := document.MarshalJSON(m, document.JSONStyle{})
	return b
}

func stringList(s []string) []any {
	out := make([]any, len(s))
	for i, k := range s {
		out[i] = k
	}
	return out
}

func parseLayout(raw string) (*layout, error) {
	v, err := document.ParseJSON([]byte(raw))
	if err != nil {
		return nil, err
	}
	m, ok := v.(*document.Map)
	if !ok {
		return nil, fmt.Errorf("the order field holds a JSON %s, not an object", document.TypeName(v))
	}
	if ver, _ := m.Get("v"); ver != layoutVersion {
		return nil, fmt.Errorf("unknown layout version %v (this build reads version %d)", ver, layoutVersion)
	}
	l := &layout{}
	if l.keys, err = stringsAt(m, "keys"); err != nil {
		return nil, err
	}
	if m.Has(stateKey) {
		l.split = true
		if l.state, err = stringsAt(m, stateKey); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func stringsAt(m *document.Map, k string) ([]string, error) {
	v, _ := m.Get(k)
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("order field: %q is a %s, not a list", k, document.TypeName(v))
	}
	out := make([]string, len(l))
	for i, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("order field: %q holds a %s, not a key", k, document.TypeName(e))
		}
		out[i] = s
	}
	return out, nil
}

// encoded is a document as hash fields.
type encoded struct {
	lay    layout
	fields map[string][]byte // every field but order
}

func encodeValue(ref, what string, v any) ([]byte, error) {
	b, err := document.MarshalJSON(v, document.JSONStyle{})
	if err != nil {
		return nil, fmt.Errorf("store: encoding %s of cicd context %q: %w", what, ref, err)
	}
	return b, nil
}

// encodeTop adds the fields of top-level key k (value v) to e.
func (e *encoded) encodeTop(ref, k string, v any) error {
	if sm, ok := v.(*document.Map); ok && k == stateKey {
		e.lay.split = true
		e.lay.state = append([]string(nil), sm.Keys()...)
		for _, sk := range e.lay.state {
			sv, _ := sm.Get(sk)
			b, err := encodeValue(ref, "state."+sk, sv)
			if err != nil {
				return err
			}
			e.fields[stateField(sk)] = b
		}
		return nil
	}
	b, err := encodeValue(ref, k, v)
	if err != nil {
		return err
	}
	e.fields[topField(k)] = b
	return nil
}

func encodeDoc(ref string, doc *document.Map) (*encoded, error) {
	if doc == nil {
		return nil, fmt.Errorf("store: nil document for cicd context %q", ref)
	}
	e := &encoded{fields: make(map[string][]byte, doc.Len()+8)}
	e.lay.keys = append([]string(nil), doc.Keys()...)
	for _, k := range e.lay.keys {
		v, _ := doc.Get(k)
		if err := e.encodeTop(ref, k, v); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// hsetArgs are the field-value pairs of every field, order included.
func (e *encoded) hsetArgs() []any {
	args := make([]any, 0, 2*len(e.fields)+2)
	args = append(args, fieldOrder, e.lay.encode())
	for f, b := range e.fields {
		args = append(args, f, b)
	}
	return args
}

func (s *Store) malformed(key, field string, err error) error {
	if field != "" {
		return fmt.Errorf("%w: Redis key %s field %s at %s: %v", ErrMalformed, key, field, s.addr, err)
	}
	return fmt.Errorf("%w: Redis key %s at %s: %v", ErrMalformed, key, s.addr, err)
}

func (s *Store) parseField(key, field, raw string) (any, error) {
	v, err := document.ParseJSON([]byte(raw))
	if err != nil {
		return nil, s.malformed(key, field, err)
	}
	return v, nil
}

// layoutOf parses the order field of a hash.
func (s *Store) layoutOf(key string, h map[string]string) (*layout, error) {
	raw, ok := h[fieldOrder]
	if !ok {
		return nil, s.malformed(key, "", fmt.Errorf("hash without an %q field", fieldOrder))
	}
	l, err := parseLayout(raw)
	if err != nil {
		return nil, s.malformed(key, fieldOrder, err)
	}
	return l, nil
}

func (s *Store) missingField(key, field string) error {
	return s.malformed(key, field, fmt.Errorf("the field named in %q is missing", fieldOrder))
}

// decodeHash builds the document of a whole hash.
func (s *Store) decodeHash(key string, h map[string]string) (*document.Map, error) {
	lay, err := s.layoutOf(key, h)
	if err != nil {
		return nil, err
	}
	doc := document.NewMap()
	for _, k := range lay.keys {
		if k == stateKey && lay.split {
			sm := document.NewMap()
			for _, sk := range lay.state {
				f := stateField(sk)
				raw, ok := h[f]
				if !ok {
					return nil, s.missingField(key, f)
				}
				v, err := s.parseField(key, f, raw)
				if err != nil {
					return nil, err
				}
				sm.Set(sk, v)
			}
			doc.Set(k, sm)
			continue
		}
		f := topField(k)
		raw, ok := h[f]
		if !ok {
			return nil, s.missingField(key, f)
		}
		v, err := s.parseField(key, f, raw)
		if err != nil {
			return nil, err
		}
		doc.Set(k, v)
	}
	return doc, nil
}

// rawHash assembles the compact JSON of a whole hash without decoding values
// (the same bytes MarshalJSON gives for the document).
func (s *Store) rawHash(key string, h map[string]string) ([]byte, error) {
	lay, err := s.layoutOf(key, h)
	if err != nil {
		return nil, err
	}
	n := 2
	for _, v := range h {
		n += len(v) + 16
	}
	buf := bytes.NewBuffer(make([]byte, 0, n))
	member := func(i int, k, f string) error {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, _ := document.MarshalJSON(k, document.JSONStyle{})
		buf.Write(kb)
		buf.WriteByte(':')
		if f == "" {
			return nil
		}
		raw, ok := h[f]
		if !ok {
			return s.missingField(key, f)
		}
		buf.WriteString(raw)
		return nil
	}
	buf.WriteByte('{')
	for i, k := range lay.keys {
		if k == stateKey && lay.split {
			_ = member(i, k, "")
			buf.WriteByte('{')
			for j, sk := range lay.state {
				if err := member(j, sk, stateField(sk)); err != nil {
					return nil, err
				}
			}
			buf.WriteByte('}')
			continue
		}
		if err := member(i, k, topField(k)); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// isWrongType says whether err is Redis' WRONGTYPE: the key holds a string,
// i.e. a document of the former one-JSON-string layout.
func isWrongType(err error) bool { return err != nil && redis.HasErrorPrefix(err, "WRONGTYPE") }

// fieldPlan is what a set of dotted paths needs of a document.
type fieldPlan struct {
	full      bool            // a path needs the whole document
	top       map[string]bool // top-level keys (not state)
	wantState bool            // some path goes below state
	state     map[string]bool // keys of state
}

// planPaths maps dotted paths to the keys they touch: "state.a.b" needs state
// key a, "channel.x" top-level key channel. A path that is exactly "state",
// has an empty segment or a first segment with a [] or {} marker needs the
// whole document.
func planPaths(paths []string) fieldPlan {
	p := fieldPlan{top: map[string]bool{}, state: map[string]bool{}}
	for _, path := range paths {
		segs := strings.Split(path, ".")
		for _, sg := range segs {
			if sg == "" {
				p.full = true
				return p
			}
		}
		if hasMarker(segs[0]) || (segs[0] == stateKey && len(segs) == 1) {
			p.full = true
			return p
		}
		if segs[0] != stateKey {
			p.top[segs[0]] = true
			continue
		}
		k := strings.TrimSuffix(strings.TrimSuffix(segs[1], "[]"), "{}")
		if k == "" {
			p.full = true
			return p
		}
		p.wantState = true
		p.state[k] = true
	}
	return p
}

func hasMarker(seg string) bool { return strings.HasSuffix(seg, "[]") || strings.HasSuffix(seg, "{}") }

// fields are the hash fields the plan reads, order first.
func (p *fieldPlan) fields() []string {
	out := make([]string, 0, 2+len(p.top)+len(p.state))
	out = append(out, fieldOrder)
	for k := range p.top {
		out = append(out, topField(k))
	}
	if p.wantState {
		out = append(out, topField(stateKey))
		for k := range p.state {
			out = append(out, stateField(k))
		}
	}
	return out
}
