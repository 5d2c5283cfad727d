package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// errNeedFull: a partial update found that fn went beyond the part it was given
// (or the document is in the former layout); it is run again as a full Update.
var errNeedFull = errors.New("store: the update needs the whole document")

// partial is the part of a document that a set of paths needs.
type partial struct {
	lay *layout
	doc *document.Map
	// raw JSON of the loaded fields, by field name
	raw map[string]string
	// top-level keys in doc (state included when loaded), in document order
	loaded []string
	// state as loaded: the partial map of a split state (stateMap, with the keys
	// stateLoaded), or the whole value of a non-map state (stateWhole)
	stateMap    *document.Map
	stateLoaded []string
	stateWhole  bool
}

// loadPartial builds the partial document from the values of plan.fields()
// (vals[0] is the order field and must not be nil).
func (s *Store) loadPartial(key string, plan *fieldPlan, fields []string, vals []any) (*partial, error) {
	order, _ := vals[0].(string)
	lay, err := parseLayout(order)
	if err != nil {
		return nil, s.malformed(key, fieldOrder, err)
	}
	p := &partial{lay: lay, doc: document.NewMap(), raw: make(map[string]string, len(fields))}
	for i, f := range fields[1:] {
		if v, ok := vals[i+1].(string); ok {
			p.raw[f] = v
		}
	}
	load := func(f string) (any, error) {
		raw, ok := p.raw[f]
		if !ok {
			return nil, s.missingField(key, f)
		}
		return s.parseField(key, f, raw)
	}
	for _, k := range lay.keys {
		switch {
		case k == stateKey && plan.wantState && lay.split:
			sm := document.NewMap()
			for _, sk := range lay.state {
				if !plan.state[sk] {
					continue
				}
				v, err := load(stateField(sk))
				if err != nil {
					return nil, err
				}
				sm.Set(sk, v)
				p.stateLoaded = append(p.stateLoaded, sk)
			}
			p.doc.Set(k, sm)
			p.stateMap = sm
		case k == stateKey && plan.wantState:
			v, err := load(topField(k))
			if err != nil {
				return nil, err
			}
			p.doc.Set(k, v)
			p.stateWhole = true
		case k != stateKey && plan.top[k]:
			v, err := load(topField(k))
			if err != nil {
				return nil, err
			}
			p.doc.Set(k, v)
		default:
			continue
		}
		p.loaded = append(p.loaded, k)
	}
	return p, nil
}

// diffKeys compares the keys of a partial map after fn (now) with those loaded
// (in document order) out of all the keys of the stored map. ok is false when
// fn set a key that exists but was not loaded, or moved a loaded key after a
// new one: only the whole document can tell the result then.
func diffKeys(now, loaded, all []string) (kept, added, deleted []string, ok bool) {
	idx := make(map[string]int, len(loaded))
	for i, k := range loaded {
		idx[k] = i
	}
	var exists map[string]bool
	last := -1
	for _, k := range now {
		if i, isLoaded := idx[k]; isLoaded {
			if len(added) > 0 || i < last {
				return nil, nil, nil, false
			}
			last = i
			kept = append(kept, k)
			continue
		}
		if exists == nil {
			exists = make(map[string]bool, len(all))
			for _, a := range all {
				exists[a] = true
			}
		}
		if exists[k] {
			return nil, nil, nil, false
		}
		added = append(added, k)
	}
	if len(kept) < len(loaded) {
		keptSet := make(map[string]bool, len(kept))
		for _, k := range kept {
			keptSet[k] = true
		}
		for _, k := range loaded {
			if !keptSet[k] {
				deleted = append(deleted, k)
			}
		}
	}
	return kept, added, deleted, true
}

// without is keys minus drop, plus add.
func without(keys, drop, add []string) []string {
	d := make(map[string]bool, len(drop))
	for _, k := range drop {
		d[k] = true
	}
	out := make([]string, 0, len(keys)+len(add))
	for _, k := range keys {
		if !d[k] {
			out = append(out, k)
		}
	}
	return append(out, add...)
}

// changes lists the HSET pairs and HDEL fields that store what fn made of the
// partial document, or errNeedFull.
func (p *partial) changes(ref string) (writes []any, dels []string, err error) {
	kept, added, deleted, ok := diffKeys(p.doc.Keys(), p.loaded, p.lay.keys)
	if !ok {
		return nil, nil, errNeedFull
	}
	lay := *p.lay
	orderChanged := false
	put := func(f, what string, v any) error {
		b, err := encodeValue(ref, what, v)
		if err != nil {
			return err
		}
		if cur, ok := p.raw[f]; !ok || cur != string(b) {
			writes = append(writes, f, b)
		}
		return nil
	}
	for _, k := range kept {
		v, _ := p.doc.Get(k)
		if k != stateKey {
			if err := put(topField(k), k, v); err != nil {
				return nil, nil, err
			}
			continue
		}
		sm, isMap := v.(*document.Map)
		if p.stateWhole {
			if isMap { // a non-map state became a map: a change of layout
				return nil, nil, errNeedFull
			}
			if err := put(topField(k), k, v); err != nil {
				return nil, nil, err
			}
			continue
		}
		if !isMap || sm != p.stateMap { // state replaced as a whole
			return nil, nil, errNeedFull
		}
		keptS, addedS, deletedS, ok := diffKeys(sm.Keys(), p.stateLoaded, p.lay.state)
		if !ok {
			return nil, nil, errNeedFull
		}
		for _, sk := range append(keptS, addedS...) {
			sv, _ := sm.Get(sk)
			if err := put(stateField(sk), "state."+sk, sv); err != nil {
				return nil, nil, err
			}
		}
		for _, sk := range deletedS {
			dels = append(dels, stateField(sk))
		}
		if len(addedS) > 0 || len(deletedS) > 0 {
			lay.state = without(p.lay.state, deletedS, addedS)
			orderChanged = true
		}
	}
	for _, k := range deleted {
		if k == stateKey && !p.stateWhole {
			for _, sk := range p.lay.state {
				dels = append(dels, stateField(sk))
			}
			lay.split, lay.state = false, nil
			continue
		}
		dels = append(dels, topField(k))
	}
	for _, k := range added {
		v, _ := p.doc.Get(k)
		if sm, isMap := v.(*document.Map); isMap && k == stateKey {
			lay.split, lay.state = true, append([]string(nil), sm.Keys()...)
			for _, sk := range lay.state {
				sv, _ := sm.Get(sk)
				if err := put(stateField(sk), "state."+sk, sv); err != nil {
					return nil, nil, err
				}
			}
			continue
		}
		if err := put(topField(k), k, v); err != nil {
			return nil, nil, err
		}
	}
	if len(added) > 0 || len(deleted) > 0 {
		lay.keys = without(p.lay.keys, deleted, added)
		orderChanged = true
	}
	if orderChanged {
		writes = append(writes, fieldOrder, lay.encode())
	}
	return writes, dels, nil
}

// UpdatePaths is Update for a fn that reads and writes only below the given dotted
// paths (the paths of document.SetPath: "state.a.b" needs state key a, "channel" the
// top-level key channel). fn gets a partial document: the top-level keys the paths
// name, and a state map with only the state keys they name, in document order. Only
// the fields fn changed are written back; keys fn adds are appended to the order.
// The cost is independent of the size of the rest of the document.
//
// It falls back to a full Update (fn runs again on the whole document) when a path
// needs the whole document (exactly "state", an empty segment or a first segment with
// a [] or {} marker), when fn set a key that exists but was not loaded, replaced the
// state map or changed whether state is a map, or when the document is stored in the
// former layout. A key fn deletes and sets again keeps its place (a full Update would
// move it last). Concurrency, exactly-once records, TTL and errors are as for Update.
func (s *Store) UpdatePaths(ctx context.Context, ref, opKey string, paths []string, fn UpdateFunc) (result []byte, replayed bool, err error) {
	plan := planPaths(paths)
	if plan.full {
		return s.Update(ctx, ref, opKey, fn)
	}
	key, opK, keys, err := s.txKeys(ref, opKey)
	if err != nil {
		return nil, false, err
	}
	fields := plan.fields()
	meta := historyMeta(ctx)
	for delays := txBackoff(); ; {
		var res []byte
		var replay, wrote, applied bool
		var hist *historyWrite
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			wrote, applied, hist = false, false, nil
			var opCmd *redis.StringCmd
			var docCmd *redis.SliceCmd
			var ttlCmd *redis.DurationCmd
			var execSent bool
			defer s.endPipelinedWatch(ctx, tx, &execSent)
			_, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
				s.queueWatch(ctx, p, keys)
				if opK != "" {
					opCmd = p.Get(ctx, opK)
				}
				docCmd = p.HMGet(ctx, key, fields...)
				if meta != nil {
					ttlCmd = p.PTTL(ctx, key) // the history expires with the document
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) && !isWrongType(err) {
				return err
			}
			if b, found, err := recordedResult(opCmd); err != nil || found {
				res, replay = b, found
				if err != nil {
					return err
				}
				return s.durableReplay(ctx, tx, opK)
			}
			vals, err := docCmd.Result()
			switch {
			case isWrongType(err):
				return errNeedFull
			case err != nil:
				return err
			case vals[0] == nil:
				return s.noOrder(ctx, tx, ref, key)
			}
			part, err := s.loadPartial(key, &plan, fields, vals)
			if err != nil {
				return err
			}
			changed, r, err := fn(part.doc)
			if err != nil {
				return fnError{err}
			}
			res = r
			var writes []any
			var dels []string
			if changed {
				if writes, dels, err = part.changes(ref); err != nil {
					return err
				}
				order, _ := vals[0].(string)
				if err := s.checkPartial(ctx, tx, ref, key, part.lay, part.raw, order, writes, dels); err != nil {
					if errors.Is(err, ErrTooLarge) {
						return fnError{err}
					}
					return err
				}
			}
			wrote = len(writes) > 0 || len(dels) > 0
			if opK == "" && !wrote {
				return nil
			}
			if opK != "" && r == nil {
				r = []byte{}
			}
			if wrote && meta != nil {
				// a key fn added was not loaded: diffKeys made sure it did not exist
				if hist, err = s.newHistoryWrite(meta, ref, part.raw, writes, dels, part.lay, pttl(ttlCmd)); err != nil {
					return err
				}
			}
			execSent = true // EXEC ends the WATCH, whatever it answers
			if _, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				queueFieldWrites(ctx, p, key, writes, dels, opK, r, s.ttl)
				hist.queue(ctx, p)
				if wrote {
					s.queueIndex(ctx, p, ref)
				}
				return nil
			}); err != nil {
				return err
			}
			applied = true
			return s.durable(ctx, tx)
		}, s.watchedFirst(keys)...)
		if applied && wrote { // even when too few replicas acknowledged it: it is on the primary
			s.committed(ctx, ref, hist)
		}
		switch {
		case err == nil:
			return res, replay, nil
		case errors.Is(err, errNeedFull):
			return s.Update(ctx, ref, opKey, fn)
		}
		if err := s.retryOrFail(ctx, err, &delays, key); err != nil {
			return nil, false, err
		}
	}
}

// The WATCH of an update (Update and UpdatePaths) goes in the pipeline of its
// reads on one node (oneNode): Redis runs the commands of a connection in
// order, so the keys are watched before they are read, as with a WATCH of its
// own, at one round trip less per write. On a Cluster go-redis's Watch sends it
// alone (watchedFirst).

// watchedFirst is the keys to give go-redis's Watch: none where the WATCH is
// pipelined with the reads.
func (s *Store) watchedFirst(keys []string) []string {
	if s.oneNode() {
		return nil
	}
	return keys
}

// queueWatch queues the WATCH of keys into the reads' pipeline p, on one node.
func (s *Store) queueWatch(ctx context.Context, p redis.Pipeliner, keys []string) {
	if !s.oneNode() {
		return
	}
	args := make([]any, 0, len(keys)+1)
	args = append(args, "watch")
	for _, k := range keys {
		args = append(args, k)
	}
	p.Do(ctx, args...)
}

// endPipelinedWatch ends a transaction whose WATCH was pipelined: go-redis
// does not know of that WATCH, so a transaction that sent no EXEC (a replay,
// nothing to write, an error) sends UNWATCH itself before its connection goes
// back to the pool, as go-redis does for its own WATCH.
func (s *Store) endPipelinedWatch(ctx context.Context, tx *redis.Tx, execSent *bool) {
	if s.oneNode() && !*execSent {
		_ = tx.Unwatch(ctx).Err()
	}
}

// noOrder explains a hash without an order field: no document, or a malformed one.
func (s *Store) noOrder(ctx context.Context, c redis.Cmdable, ref, key string) error {
	n, err := c.Exists(ctx, key).Result()
	if err != nil {
		return err
	}
	if n == 0 {
		return s.notFound(ref)
	}
	return s.malformed(key, "", fmt.Errorf("hash without an %q field", fieldOrder))
}

// GetPaths reads the part of the document of ref that the given dotted paths need
// (see UpdatePaths): the top-level keys they name and, in a state map, the state keys
// they name, in document order; keys that do not exist are left out. One HMGET of the
// needed fields, so never a half-written document. A path that needs the whole
// document, or a document in the former layout, makes it a full Get.
func (s *Store) GetPaths(ctx context.Context, ref string, paths []string) (*document.Map, error) {
	plan := planPaths(paths)
	if plan.full {
		return s.Get(ctx, ref)
	}
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	key := s.DocKey(ref)
	fields := plan.fields()
	vals, err := s.rdb.HMGet(ctx, key, fields...).Result()
	switch {
	case isWrongType(err):
		return s.Get(ctx, ref)
	case err != nil:
		return nil, s.wrap(err, "HMGET", key)
	case vals[0] == nil:
		err := s.noOrder(ctx, s.rdb, ref, key)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrMalformed) {
			return nil, err
		}
		return nil, s.wrap(err, "EXISTS", key)
	}
	part, err := s.loadPartial(key, &plan, fields, vals)
	if err != nil {
		return nil, err
	}
	return part.doc, nil
}

// queueFieldWrites queues, inside a MULTI, the changed fields of a context
// hash, the removed ones, and the exactly-once record of the op.
func queueFieldWrites(ctx context.Context, p redis.Pipeliner, key string, writes []any, dels []string, opK string, result []byte, ttl time.Duration) {
	if len(writes) > 0 {
		p.HSet(ctx, key, writes...)
	}
	if len(dels) > 0 {
		p.HDel(ctx, key, dels...)
	}
	if opK != "" {
		p.Set(ctx, opK, result, ttl)
	}
}

// recordedResult reads the op record queued in opCmd (nil: no op key): found
// says the op was applied before and its result is to be replayed.
func recordedResult(opCmd *redis.StringCmd) (result []byte, found bool, err error) {
	if opCmd == nil {
		return nil, false, nil
	}
	b, err := opCmd.Bytes()
	switch {
	case err == nil:
		return b, true, nil
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	}
	return nil, false, err
}
