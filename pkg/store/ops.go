package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/internal/delay"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// DocKey is the Redis key of the document of ref ("<namespace>/<id>", see Ref).
func (s *Store) DocKey(ref string) string { return s.contextKeys(ref) + ":ctx" }

// DocOpKey is the Redis key of the record of an op that writes the document of
// ref (Put, Update, UpdatePaths with an op key): in the document's hash slot, so
// the write and its record go in one MULTI/EXEC on Redis Cluster too.
func (s *Store) DocOpKey(ref, opKey string) string { return s.contextKeys(ref) + ":op:" + opKey }

// contextKeys is the common start of every key of the context ref: the prefix
// and the hash tag {<namespace>/<escaped id>}. The id is escaped so that it
// cannot end the tag early or make two contexts' keys collide. The prefix holds
// no '{' (New refuses it), so this '{' opens the key's hash tag, and the first
// '}' after it, the one written here, closes it. Only a valid ref (checkRef)
// names one context: "ns" and "ns/" give the same key.
func (s *Store) contextKeys(ref string) string {
	ns, id, _ := strings.Cut(ref, "/")
	return s.prefix + ":{" + ns + "/" + escapeID(id) + "}"
}

// idEscaper percent-encodes the bytes of an id that would end a hash tag ('}'),
// open one ('{', kept out of the tag for readers' sake) and the escape itself
// ('%'), so that escaping is injective.
var idEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func escapeID(id string) string { return idEscaper.Replace(id) }

// LegacyDocKey is the key of the document of id as versions before namespaces
// stored it (one namespace for the whole cluster); only Migrate reads it.
func (s *Store) LegacyDocKey(id string) string { return s.prefix + ":ctx:" + id }

// OpKey is the Redis key of the standalone op record of opKey (SetOpResult and
// friends; records of document writes live beside the document).
func (s *Store) OpKey(opKey string) string { return s.prefix + ":op:" + opKey }

// ClaimKey is the Redis key of the claim of key.
func (s *Store) ClaimKey(key string) string { return s.prefix + ":claim:" + key }

// Ref names the context id owned by namespace: "<namespace>/<id>". A context
// belongs to the namespace that created it; the same id in two namespaces is
// two contexts.
func Ref(namespace, id string) string { return namespace + "/" + id }

// SplitRef is the inverse of Ref: the namespace is what comes before the first
// '/', so ids cannot contain '/'.
func SplitRef(ref string) (namespace, id string, err error) {
	if err := checkRef(ref); err != nil {
		return "", "", err
	}
	namespace, id, _ = strings.Cut(ref, "/")
	return namespace, id, nil
}

// CheckNamespace validates a namespace name (a Kubernetes DNS-1123 label).
func CheckNamespace(ns string) error {
	if len(ns) == 0 || len(ns) > 63 {
		return fmt.Errorf("%w: namespace %q must be 1 to 63 characters", ErrInvalidKey, ns)
	}
	for i, c := range ns {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(ns)-1) {
			return fmt.Errorf("%w: namespace %q must be lower-case letters, digits and '-' (a DNS label)", ErrInvalidKey, ns)
		}
	}
	return nil
}

// CheckID validates a context id (without its namespace).
func CheckID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty cicd context id", ErrInvalidKey)
	case len(id) > MaxIDLen:
		return fmt.Errorf("%w: cicd context id is %d bytes long, at most %d allowed", ErrInvalidKey, len(id), MaxIDLen)
	case strings.Contains(id, "/"):
		return fmt.Errorf("%w: cicd context id %q contains '/', which separates a namespace from an id (namespace/id)", ErrInvalidKey, id)
	}
	return nil
}

// checkRef validates a ref "<namespace>/<id>".
func checkRef(ref string) error {
	ns, id, ok := strings.Cut(ref, "/")
	if !ok {
		return fmt.Errorf("%w: cicd context %q has no namespace (want namespace/id)", ErrInvalidKey, ref)
	}
	if err := CheckNamespace(ns); err != nil {
		return err
	}
	return CheckID(id)
}

func checkOpKey(kind, k string) error {
	switch {
	case k == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidKey, kind)
	case len(k) > MaxOpKeyLen:
		return fmt.Errorf("%w: %s is %d bytes long, at most %d allowed", ErrInvalidKey, kind, len(k), MaxOpKeyLen)
	}
	return nil
}

// notFound says the same for a context that does not exist and one the caller
// may not see: nothing tells them apart.
func (s *Store) notFound(ref string) error {
	return fmt.Errorf("%w: %s", ErrNotFound, ref)
}

// decode parses a document stored in the former layout (one JSON string).
func (s *Store) decode(key string, data []byte) (*document.Map, error) {
	v, err := document.ParseJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%w: Redis key %s at %s: %v", ErrMalformed, key, s.addr, err)
	}
	m, ok := v.(*document.Map)
	if !ok {
		return nil, fmt.Errorf("%w: Redis key %s at %s holds a JSON %s, not an object",
			ErrMalformed, key, s.addr, document.TypeName(v))
	}
	return m, nil
}

// readDoc reads the document at key in one command: its hash, or (legacy) the JSON
// string of the former layout. A missing key is redis.Nil.
func (s *Store) readDoc(ctx context.Context, c redis.Cmdable, key string) (h map[string]string, legacy []byte, err error) {
	for attempt := 0; ; attempt++ {
		h, err = c.HGetAll(ctx, key).Result()
		switch {
		case err == nil && len(h) == 0:
			return nil, nil, redis.Nil
		case err == nil:
			return h, nil, nil
		case !isWrongType(err):
			return nil, nil, err
		}
		legacy, err = c.Get(ctx, key).Bytes()
		// WRONGTYPE again: rewritten as a hash in between; read again.
		if !isWrongType(err) || attempt == 3 {
			return nil, legacy, err
		}
	}
}

// Get reads the document of ref: ErrNotFound when it does not exist. One HGETALL of
// one key, so never a half-written document.
func (s *Store) Get(ctx context.Context, ref string) (*document.Map, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	key := s.DocKey(ref)
	h, legacy, err := s.readDoc(ctx, s.rdb, key)
	switch {
	case errors.Is(err, redis.Nil):
		return nil, s.notFound(ref)
	case err != nil:
		return nil, s.wrap(err, "HGETALL", key)
	case legacy != nil:
		return s.decode(key, legacy)
	}
	return s.decodeHash(key, h)
}

// GetRaw reads the document of ref as compact JSON, assembled from the stored fields
// without decoding them (the bytes document.MarshalJSON gives for the document).
func (s *Store) GetRaw(ctx context.Context, ref string) ([]byte, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	key := s.DocKey(ref)
	h, legacy, err := s.readDoc(ctx, s.rdb, key)
	switch {
	case errors.Is(err, redis.Nil):
		return nil, s.notFound(ref)
	case err != nil:
		return nil, s.wrap(err, "HGETALL", key)
	case legacy != nil:
		return legacy, nil
	}
	return s.rawHash(key, h)
}

// PutOptions tune Put.
type PutOptions struct {
	// TTL expires the document after this long; 0 keeps it forever. Later Updates keep
	// the TTL.
	TTL time.Duration
	// OpKey makes the Put exactly-once: when the op record exists (at DocOpKey, beside
	// the document) nothing is written and its stored result is returned with
	// replayed=true; otherwise the document and the op record (= Result, kept for
	// DoneTTL) are written atomically.
	OpKey  string
	Result []byte
}

// Put writes (creates or replaces) the document of ref; see PutOptions. Without OpKey
// it returns (nil, false, err). The old document is replaced in one MULTI/EXEC (DEL,
// HSET, PEXPIRE).
func (s *Store) Put(ctx context.Context, ref string, doc *document.Map, o PutOptions) (result []byte, replayed bool, err error) {
	if err := checkRef(ref); err != nil {
		return nil, false, err
	}
	if o.TTL < 0 || (o.TTL > 0 && o.TTL < time.Millisecond) {
		return nil, false, fmt.Errorf("store: invalid TTL %v (0, or at least 1ms)", o.TTL)
	}
	if o.OpKey != "" {
		if err := checkOpKey("op key", o.OpKey); err != nil {
			return nil, false, err
		}
	}
	enc, err := encodeDoc(ref, doc)
	if err != nil {
		return nil, false, err
	}
	if err := s.checkPut(ref, enc); err != nil {
		return nil, false, err
	}
	args := enc.hsetArgs()
	key := s.DocKey(ref)
	write := func(p redis.Pipeliner) {
		p.Del(ctx, key)
		p.HSet(ctx, key, args...)
		if o.TTL > 0 {
			p.PExpire(ctx, key, o.TTL)
		}
	}
	meta := historyMeta(ctx)
	if o.OpKey == "" && meta == nil {
		var err error
		if s.acks == 0 {
			_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				write(p)
				s.queueIndex(ctx, p, ref)
				return nil
			})
		} else {
			err = s.onConn(ctx, key, func(tx *redis.Tx) error {
				if _, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					write(p)
					s.queueIndex(ctx, p, ref)
					return nil
				}); err != nil {
					return err
				}
				return s.durable(ctx, tx)
			})
		}
		if err != nil {
			return nil, false, s.wrap(err, "PUT", key)
		}
		s.committed(ctx, ref, nil)
		return nil, false, nil
	}
	var opKey string
	var watched []string
	if o.OpKey != "" {
		opKey = s.DocOpKey(ref, o.OpKey)
		watched = append(watched, opKey)
	}
	if meta != nil {
		// the entry is the difference with the document replaced: read in the
		// WATCH, so that it is the one replaced
		watched = append(watched, key)
	}
	res := o.Result
	if res == nil && opKey != "" {
		res = []byte{}
	}
	for delays := txBackoff(); ; {
		var prev []byte
		var found, applied bool
		var hist *historyWrite
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			applied, hist = false, nil
			if opKey != "" {
				b, err := tx.Get(ctx, opKey).Bytes()
				if err == nil {
					prev, found = b, true
					return s.durableReplay(ctx, tx, opKey)
				}
				if !errors.Is(err, redis.Nil) {
					return err
				}
			}
			if meta != nil {
				old, err := s.storedFields(ctx, tx, key)
				if errors.Is(err, ErrMalformed) {
					old = nil // replaced by a readable one: all of it is new
				} else if err != nil {
					return err
				}
				writes, dels := diffHash(old, enc)
				if hist, err = s.newHistoryWrite(meta, ref, old, writes, dels, &enc.lay, o.TTL); err != nil {
					return err
				}
			}
			if _, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				write(p)
				if opKey != "" {
					p.Set(ctx, opKey, res, s.ttl)
				}
				hist.queue(ctx, p)
				s.queueIndex(ctx, p, ref)
				return nil
			}); err != nil {
				return err
			}
			applied = true
			return s.durable(ctx, tx)
		}, watched...)
		if applied { // even when too few replicas acknowledged it: it is on the primary
			s.committed(ctx, ref, hist)
		}
		switch {
		case err == nil && found:
			return prev, true, nil
		case err == nil:
			if opKey == "" {
				return nil, false, nil
			}
			return res, false, nil
		case errors.Is(err, redis.TxFailedErr):
			if err := backoff(ctx, &delays); err != nil {
				return nil, false, s.wrap(err, "PUT", key)
			}
		default:
			return nil, false, s.wrap(err, "PUT", key)
		}
	}
}

// storedFields reads the fields (but order) of the document at key as
// stored, a document in the former layout re-encoded; nil when there is none.
func (s *Store) storedFields(ctx context.Context, c redis.Cmdable, key string) (map[string]string, error) {
	h, legacy, err := s.readDoc(ctx, c, key)
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, err
	case legacy != nil:
		doc, err := s.decode(key, legacy)
		if err != nil {
			return nil, err
		}
		enc, err := encodeDoc(key, doc)
		if err != nil {
			return nil, err
		}
		return fieldsOf(enc), nil
	}
	return h, nil
}

// UpdateFunc mutates doc in place and says whether it changed it; result is stored as
// the op record of an exactly-once Update. It may run several times (once per attempt),
// always on a freshly read document, so it must not have effects beyond doc.
type UpdateFunc func(doc *document.Map) (changed bool, result []byte, err error)

// fnError carries the error of an UpdateFunc out of the transaction unchanged.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// diffHash lists the HSET pairs and HDEL fields that turn hash old into enc.
func diffHash(old map[string]string, enc *encoded) (writes []any, dels []string) {
	if ord := enc.lay.encode(); old[fieldOrder] != string(ord) {
		writes = append(writes, fieldOrder, ord)
	}
	for f, b := range enc.fields {
		if cur, ok := old[f]; !ok || cur != string(b) {
			writes = append(writes, f, b)
		}
	}
	for f := range old {
		if _, ok := enc.fields[f]; !ok && f != fieldOrder {
			dels = append(dels, f)
		}
	}
	return writes, dels
}

// Update atomically reads, modifies (fn) and writes the document of ref, retrying lost
// races (with jittered backoff) until ctx ends. The document keeps its TTL. Only the
// fields whose JSON changed are written (HSET, HDEL in MULTI/EXEC); UpdatePaths also
// reads only the fields it needs.
//
// With opKey != "", the update is exactly-once: if the op record exists (DocOpKey: an op
// key is scoped to the context, and OpResult does not see these records), fn is not
// called and its stored result is returned with replayed=true; otherwise the document
// (if changed) and the op record (= fn's result, kept for DoneTTL) are written in one
// transaction. A missing document is ErrNotFound (fn not called); fn's error is returned
// as is and nothing is written.
func (s *Store) Update(ctx context.Context, ref, opKey string, fn UpdateFunc) (result []byte, replayed bool, err error) {
	key, opK, keys, err := s.txKeys(ref, opKey)
	if err != nil {
		return nil, false, err
	}
	meta := historyMeta(ctx)
	for delays := txBackoff(); ; {
		var res []byte
		var replay, wrote, applied bool
		var hist *historyWrite
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			wrote, applied, hist = false, false, nil
			var opCmd *redis.StringCmd
			var docCmd *redis.MapStringStringCmd
			var ttlCmd *redis.DurationCmd
			var execSent bool
			defer s.endPipelinedWatch(ctx, tx, &execSent)
			_, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
				s.queueWatch(ctx, p, keys)
				if opK != "" {
					opCmd = p.Get(ctx, opK)
				}
				docCmd = p.HGetAll(ctx, key)
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
			h, err := docCmd.Result()
			var legacy []byte
			var legacyTTL time.Duration
			switch {
			case isWrongType(err): // the former layout: read it, write it back as a hash
				if legacy, err = tx.Get(ctx, key).Bytes(); err != nil {
					return err
				}
				if legacyTTL, err = tx.PTTL(ctx, key).Result(); err != nil {
					return err
				}
			case err != nil:
				return err
			case len(h) == 0:
				return s.notFound(ref)
			}
			var doc *document.Map
			if legacy != nil {
				doc, err = s.decode(key, legacy)
			} else {
				doc, err = s.decodeHash(key, h)
			}
			if err != nil {
				return err
			}
			changed, r, err := fn(doc)
			if err != nil {
				return fnError{err}
			}
			res = r
			var enc *encoded
			var writes []any
			var dels []string
			if changed {
				if enc, err = encodeDoc(ref, doc); err != nil {
					return err
				}
				old := hashSize(h)
				if legacy != nil {
					old = int64(len(legacy))
				}
				if err := s.checkUpdate(ref, old, enc); err != nil {
					return fnError{err}
				}
				if legacy == nil {
					writes, dels = diffHash(h, enc)
				}
			}
			rewrite := enc != nil && legacy != nil
			wrote = len(writes) > 0 || len(dels) > 0 || rewrite
			if opK == "" && !wrote {
				return nil
			}
			if opK != "" && r == nil {
				r = []byte{}
			}
			if wrote && meta != nil {
				if hist, err = s.updateHistory(meta, ref, key, h, legacy, enc, writes, dels, legacyTTL, ttlCmd); err != nil {
					return err
				}
			}
			execSent = true // EXEC ends the WATCH, whatever it answers
			if _, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				if rewrite {
					p.Del(ctx, key)
					p.HSet(ctx, key, enc.hsetArgs()...)
					if legacyTTL > 0 {
						p.PExpire(ctx, key, max(legacyTTL, time.Millisecond))
					}
				}
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
		if err == nil {
			return res, replay, nil
		}
		if err := s.retryOrFail(ctx, err, &delays, key); err != nil {
			return nil, false, err
		}
	}
}

// updateHistory builds the entry of an Update: the fields it writes and
// deletes against those of hash h, or against the legacy document it
// rewrites as a hash. The history gets the document's time to live.
func (s *Store) updateHistory(meta *HistoryMeta, ref, key string, h map[string]string, legacy []byte, enc *encoded, writes []any, dels []string, legacyTTL time.Duration, ttlCmd *redis.DurationCmd) (*historyWrite, error) {
	ttl := pttl(ttlCmd)
	if legacy != nil {
		old, err := s.decode(key, legacy)
		if err != nil {
			return nil, err
		}
		oldEnc, err := encodeDoc(ref, old)
		if err != nil {
			return nil, err
		}
		h = fieldsOf(oldEnc)
		writes, dels = diffHash(h, enc)
		ttl = max(legacyTTL, 0)
	}
	var lay *layout
	if enc != nil {
		lay = &enc.lay
	}
	return s.newHistoryWrite(meta, ref, h, writes, dels, lay, ttl)
}

// txBackoff paces the retries of one optimistic transaction (WATCH, MULTI/EXEC)
// that lost a race: its n-th Step is 0.5ms doubled n-1 times, at most 25ms, and
// backoff waits a random duration from zero up to that step (full jitter). A lost
// race means another writer has just committed, so the first retries come within a
// millisecond or two; the 25ms bound keeps the writers of a contended document
// retrying often, and drawing from zero spreads them so that they do not collide
// again.
func txBackoff() delay.Doubling {
	return delay.New(500*time.Microsecond, 25*time.Millisecond)
}

// backoff sleeps a random duration in [0, delays.Step()] (full jitter), or returns
// ctx's error.
func backoff(ctx context.Context, delays *delay.Doubling) error {
	countTxRetry() // every caller backs off after a lost race (redis.TxFailedErr)
	if err := ctx.Err(); err != nil {
		return err
	}
	d := rand.N(delays.Step() + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// OpResult reads the standalone op record of opKey (OpKey, written by SetOpResult and
// SetOpResultNX): (result, true, nil) when it exists. The records of Put, Update and
// UpdatePaths live beside their document (DocOpKey) and are not read here.
func (s *Store) OpResult(ctx context.Context, opKey string) ([]byte, bool, error) {
	if err := checkOpKey("op key", opKey); err != nil {
		return nil, false, err
	}
	k := s.OpKey(opKey)
	b, err := s.rdb.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.wrap(err, "GET", k)
	}
	return b, true, nil
}

// LazyScript is a Lua script made (its SHA1 computed) at first use, not at
// package init, which every CLI run would pay (README, Benchmarks). Every
// script of the store and of the gates is one.
func LazyScript(src string) func() *redis.Script {
	return sync.OnceValue(func() *redis.Script { return redis.NewScript(src) })
}

// dropIfScript deletes a key that still holds a value. KEYS: key. ARGV: value.
var dropIfScript = LazyScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// SetOpResult records result for opKey (kept for DoneTTL), overwriting any record.
// It does not WAIT for replicas: the journal writes an outcome before the op's own
// write, whose WAIT covers it (replication keeps the primary's order).
func (s *Store) SetOpResult(ctx context.Context, opKey string, result []byte) error {
	if err := checkOpKey("op key", opKey); err != nil {
		return err
	}
	if result == nil {
		result = []byte{}
	}
	k := s.OpKey(opKey)
	return s.wrap(s.rdb.Set(ctx, k, result, s.ttl).Err(), "SET", k)
}

// SetOpResultNX records result for opKey only if there is no record yet; it returns the
// record in force afterwards and whether it was stored by this call. With replica
// acknowledgements required (Options.MinReplicaAcks) a stored record is WAITed for
// (the journal's intent must survive a failover before its side effect is made);
// without enough acknowledgements the record is taken back and the error is
// ErrUnavailable. (After a retried
// network error stored may be false although current is this call's result.)
func (s *Store) SetOpResultNX(ctx context.Context, opKey string, result []byte) (current []byte, stored bool, err error) {
	if err := checkOpKey("op key", opKey); err != nil {
		return nil, false, err
	}
	if result == nil {
		result = []byte{}
	}
	k := s.OpKey(opKey)
	var ok bool
	if s.acks > 0 {
		err = s.onConn(ctx, k, func(tx *redis.Tx) error {
			if ok, err = tx.SetNX(ctx, k, result, s.ttl).Result(); err != nil || !ok {
				return err
			}
			if err := s.durable(ctx, tx); err != nil {
				// Not durable, so not stored: take the record back (if it is still
				// this call's), so that the retry of the op records again instead of
				// finding a record it cannot tell from someone else's.
				_ = dropIfScript().Run(ctx, tx, []string{k}, result).Err()
				ok = false
				return err
			}
			return nil
		})
	} else {
		ok, err = s.rdb.SetNX(ctx, k, result, s.ttl).Result()
	}
	if err != nil {
		return nil, false, s.wrap(err, "SET NX", k)
	}
	if ok {
		return result, true, nil
	}
	prev, err := s.rdb.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) { // expired or deleted in between
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.wrap(err, "GET", k)
	}
	return prev, false, nil
}

// DeleteOpResult removes the op record of opKey (so the operation may apply again).
func (s *Store) DeleteOpResult(ctx context.Context, opKey string) error {
	if err := checkOpKey("op key", opKey); err != nil {
		return err
	}
	k := s.OpKey(opKey)
	return s.wrap(s.rdb.Del(ctx, k).Err(), "DEL", k)
}

// Claim takes key for ttl (DoneTTL when ttl <= 0): true when this call got it, false
// when someone else holds it. Use it to make a side effect happen at most once; Release
// gives the claim back, e.g. when the side effect failed and may be retried. A caller
// that retries Claim after an error should use ClaimAs with a stable owner instead.
func (s *Store) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return s.ClaimAs(ctx, key, fmt.Sprintf("anon-%016x%016x", rand.Uint64(), rand.Uint64()), ttl)
}

// ClaimAs takes key for owner (SET NX): true when it was free or owner holds it already
// (so a retry after a lost reply, or a repeated reconcile of the same run, still gets
// it), false when another owner holds it.
func (s *Store) ClaimAs(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	if err := checkOpKey("claim key", key); err != nil {
		return false, err
	}
	if owner == "" {
		return false, fmt.Errorf("%w: empty claim owner", ErrInvalidKey)
	}
	if ttl <= 0 {
		ttl = s.ttl
	}
	ttl = max(ttl, time.Millisecond)
	k := s.ClaimKey(key)
	ok, err := s.rdb.SetNX(ctx, k, owner, ttl).Result()
	if err != nil {
		return false, s.wrap(err, "SET NX", k)
	}
	if ok {
		return true, nil
	}
	cur, err := s.rdb.Get(ctx, k).Result()
	switch {
	case errors.Is(err, redis.Nil): // expired or released in between: try once more
		ok, err = s.rdb.SetNX(ctx, k, owner, ttl).Result()
		if err != nil {
			return false, s.wrap(err, "SET NX", k)
		}
		return ok, nil
	case err != nil:
		return false, s.wrap(err, "GET", k)
	}
	return cur == owner, nil
}

// ClaimOwner is the owner holding key ("" and false when nobody does).
func (s *Store) ClaimOwner(ctx context.Context, key string) (string, bool, error) {
	if err := checkOpKey("claim key", key); err != nil {
		return "", false, err
	}
	k := s.ClaimKey(key)
	cur, err := s.rdb.Get(ctx, k).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, s.wrap(err, "GET", k)
	}
	return cur, true, nil
}

// Release drops a claim, whoever holds it.
func (s *Store) Release(ctx context.Context, key string) error {
	if err := checkOpKey("claim key", key); err != nil {
		return err
	}
	k := s.ClaimKey(key)
	return s.wrap(s.rdb.Del(ctx, k).Err(), "DEL", k)
}

// ReleaseAs drops the claim only if owner holds it; false when it did not.
func (s *Store) ReleaseAs(ctx context.Context, key, owner string) (bool, error) {
	if err := checkOpKey("claim key", key); err != nil {
		return false, err
	}
	k := s.ClaimKey(key)
	for delays := txBackoff(); ; {
		released := false
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			cur, err := tx.Get(ctx, k).Result()
			if errors.Is(err, redis.Nil) {
				return nil
			}
			if err != nil || cur != owner {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Del(ctx, k)
				return nil
			})
			released = err == nil
			return err
		}, k)
		switch {
		case err == nil:
			return released, nil
		case errors.Is(err, redis.TxFailedErr):
			if err := backoff(ctx, &delays); err != nil {
				return false, s.wrap(err, "RELEASE", k)
			}
		default:
			return false, s.wrap(err, "RELEASE", k)
		}
	}
}

// Exists says whether the document of ref exists.
func (s *Store) Exists(ctx context.Context, ref string) (bool, error) {
	if err := checkRef(ref); err != nil {
		return false, err
	}
	k := s.DocKey(ref)
	n, err := s.rdb.Exists(ctx, k).Result()
	if err != nil {
		return false, s.wrap(err, "EXISTS", k)
	}
	return n > 0, nil
}

// Delete removes the document of ref and its history (one DEL: same hash
// slot); false when there was no document. Its member of the namespace's index
// is removed after.
func (s *Store) Delete(ctx context.Context, ref string) (bool, error) {
	if err := checkRef(ref); err != nil {
		return false, err
	}
	k := s.DocKey(ref)
	var existed *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		existed = p.Exists(ctx, k)
		p.Del(ctx, k, s.HistoryKey(ref))
		return nil
	})
	if err != nil {
		return false, s.wrap(err, "DEL", k)
	}
	ns, id, _ := strings.Cut(ref, "/")
	_ = s.rdb.ZRem(ctx, s.ContextsKey(ns), id).Err() // best effort: Contexts prunes it too
	return existed.Val() > 0, nil
}

// TTL is the remaining time to live of the document of ref: 0 when it never expires,
// ErrNotFound when it does not exist.
func (s *Store) TTL(ctx context.Context, ref string) (time.Duration, error) {
	if err := checkRef(ref); err != nil {
		return 0, err
	}
	k := s.DocKey(ref)
	ms, err := s.rdb.Do(ctx, "PTTL", k).Int64()
	if err != nil {
		return 0, s.wrap(err, "PTTL", k)
	}
	switch {
	case ms == -2:
		return 0, s.notFound(ref)
	case ms < 0:
		return 0, nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Expire sets the time to live of the document of ref and of its history
// (ttl <= 0: never expires).
func (s *Store) Expire(ctx context.Context, ref string, ttl time.Duration) error {
	if err := checkRef(ref); err != nil {
		return err
	}
	k, hk := s.DocKey(ref), s.HistoryKey(ref)
	var ok bool
	var err error
	if ttl > 0 {
		var set *redis.BoolCmd
		_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			set = p.PExpire(ctx, k, max(ttl, time.Millisecond))
			p.PExpire(ctx, hk, max(ttl, time.Millisecond))
			return nil
		})
		ok = set.Val()
	} else {
		var n *redis.IntCmd
		_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			// PERSIST is false both for a missing key and one without TTL.
			p.Persist(ctx, k)
			p.Persist(ctx, hk)
			n = p.Exists(ctx, k)
			return nil
		})
		ok = n.Val() > 0
	}
	if err != nil {
		return s.wrap(err, "EXPIRE", k)
	}
	if !ok {
		return s.notFound(ref)
	}
	return nil
}

// txKeys validates ref and opKey and returns the document key, the op record key
// ("" without an op key) and the keys an update WATCHes.
func (s *Store) txKeys(ref, opKey string) (key, opK string, keys []string, err error) {
	if err := checkRef(ref); err != nil {
		return "", "", nil, err
	}
	key = s.DocKey(ref)
	keys = []string{key}
	if opKey != "" {
		if err := checkOpKey("op key", opKey); err != nil {
			return "", "", nil, err
		}
		opK = s.DocOpKey(ref, opKey)
		keys = append(keys, opK)
	}
	return key, opK, keys, nil
}

// retryOrFail decides what a failed optimistic attempt means: nil after a
// backoff when another writer won the race (try again), otherwise the error
// to return (fn's own error as is, a Redis fault wrapped).
func (s *Store) retryOrFail(ctx context.Context, err error, delays *delay.Doubling, key string) error {
	var fe fnError
	switch {
	case errors.As(err, &fe):
		return fe.err
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrMalformed):
		return err
	case errors.Is(err, redis.TxFailedErr):
		if err := backoff(ctx, delays); err != nil {
			return s.wrap(err, "UPDATE", key)
		}
		return nil
	}
	return s.wrap(err, "UPDATE", key)
}
