package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
)

// The history of a context (docs/history.md) is a Redis list at HistoryKey,
// <prefix>:{<ns>/<id>}:history, newest entry first (LPUSH), in the hash slot of
// the document. A write whose ctx carries a HistoryMeta (WithHistory) queues
// its entry in the MULTI/EXEC of the write itself: LPUSH, LTRIM to the bound,
// and the document's time to live (PEXPIRE, or PERSIST for a document that
// never expires). So the entry lands with the write or not at all; a replayed
// op (its op record found) and a write that changed nothing write none.
//
// Every committed write also scores the context in the index of its namespace,
// a sorted set at ContextsKey, <prefix>:{ns:<namespace>}:contexts (member: the
// id, score: the time of the write in Unix milliseconds). The index lives in
// another hash slot, so it is written after EXEC with a command of its own (as
// the gate indexes are, pkg/gate): a write whose index update fails is still
// committed, and the next write of the context repairs the index. Contexts
// prunes the members whose context no longer exists (expired or deleted), and
// every write keeps only the MaxIndexedContexts most recent members.

// Defaults of HistoryMeta.
const (
	// DefaultHistoryLength is how many entries a context's history keeps.
	DefaultHistoryLength = 100
	// DefaultHistoryValueBytes bounds each old or new value of a change.
	DefaultHistoryValueBytes = 512
	// MaxHistoryChanges is the most changes one entry lists; the others are
	// counted in Entry.More.
	MaxHistoryChanges = 50
	// MaxIndexedContexts is the most contexts the index of one namespace
	// keeps (the most recently written); Contexts lists no older ones.
	MaxIndexedContexts = 10000
)

// HistoryMeta says which op writes and on whose behalf; see WithHistory.
type HistoryMeta struct {
	// Op is the operation (history.Entry.Op).
	Op  string
	Who history.Who
	// Redact replaces the secrets in a value or path before it is stored
	// (config.Config.Redact); nil stores values as they are.
	Redact func(string) string
	// Written, if set, is called with the entry once the transaction that
	// wrote it has committed (EXEC; also when too few replicas acknowledged
	// it afterwards and the write returns ErrUnavailable: it is on the
	// primary). Not for a write that changed nothing, nor for a replayed op.
	Written func(history.Entry)
	// MaxEntries bounds the history (oldest trimmed first); 0 or less:
	// DefaultHistoryLength (config budgets.historyLength).
	MaxEntries int
	// ValueBytes bounds each old and new value of a change; 0 or less:
	// DefaultHistoryValueBytes (config budgets.historyValueBytes).
	ValueBytes int
}

type historyCtxKey struct{}

// WithHistory makes the writes (Put, Update, UpdatePaths) made with the
// returned context append an entry to the history of the context they write.
func WithHistory(ctx context.Context, m HistoryMeta) context.Context {
	return context.WithValue(ctx, historyCtxKey{}, &m)
}

func historyMeta(ctx context.Context) *HistoryMeta {
	m, _ := ctx.Value(historyCtxKey{}).(*HistoryMeta)
	return m
}

// HistoryKey is the Redis key of the history of ref (a list, newest first), in
// the hash slot of the document.
func (s *Store) HistoryKey(ref string) string { return s.contextKeys(ref) + ":history" }

// ContextsKey is the Redis key of the index of the contexts of namespace (a
// sorted set of ids scored by their last write in Unix milliseconds). Its hash
// tag holds no '/', so it never meets the tag of a context.
func (s *Store) ContextsKey(namespace string) string {
	return s.prefix + ":{ns:" + namespace + "}:contexts"
}

// historyWrite is the entry an attempt of a write queues with it.
type historyWrite struct {
	meta  *HistoryMeta
	key   string
	entry history.Entry
	data  []byte
	// ttl of the document after the write; 0: it never expires
	ttl time.Duration
}

// newHistoryWrite builds the entry of a write that changes the fields in
// writes (HSET pairs) and dels of a document whose fields were old: nil when
// nothing but the order of keys changed, or m is nil. lay orders the changes
// (the layout of the document, before or after).
func (s *Store) newHistoryWrite(m *HistoryMeta, ref string, old map[string]string, writes []any, dels []string, lay *layout, ttl time.Duration) (*historyWrite, error) {
	if m == nil {
		return nil, nil
	}
	type fieldChange struct {
		field    string
		old, new string
		hasOld   bool
		hasNew   bool
	}
	var fcs []fieldChange
	for i := 0; i+1 < len(writes); i += 2 {
		f, _ := writes[i].(string)
		if f == fieldOrder {
			continue
		}
		o, had := old[f]
		fcs = append(fcs, fieldChange{field: f, old: o, hasOld: had, new: string(writes[i+1].([]byte)), hasNew: true})
	}
	for _, f := range dels {
		o, had := old[f]
		fcs = append(fcs, fieldChange{field: f, old: o, hasOld: had})
	}
	rank := map[string]int{}
	if lay != nil {
		for i, f := range lay.fieldNames() {
			rank[f] = i + 1
		}
	}
	sort.SliceStable(fcs, func(i, j int) bool {
		ri, rj := rank[fcs[i].field], rank[fcs[j].field]
		if ri == 0 || rj == 0 || ri == rj {
			if (ri == 0) != (rj == 0) {
				return ri != 0
			}
			return fcs[i].field < fcs[j].field
		}
		return ri < rj
	})
	d := newDiffer(m)
	for _, fc := range fcs {
		d.field(fc.field, fc.old, fc.new, fc.hasOld, fc.hasNew)
	}
	if len(d.changes) == 0 {
		return nil, nil
	}
	e := history.Entry{Time: time.Now().UTC(), Op: m.Op, Who: m.Who, Changes: d.changes, More: d.more}
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("store: encoding the history entry of cicd context %q: %w", ref, err)
	}
	return &historyWrite{meta: m, key: s.HistoryKey(ref), entry: e, data: data, ttl: ttl}, nil
}

// queue adds the entry to the MULTI of its write: pushed first, the history
// trimmed to its bound, and given the document's time to live.
func (h *historyWrite) queue(ctx context.Context, p redis.Pipeliner) {
	if h == nil {
		return
	}
	n := h.meta.MaxEntries
	if n <= 0 {
		n = DefaultHistoryLength
	}
	p.LPush(ctx, h.key, h.data)
	p.LTrim(ctx, h.key, 0, int64(n-1))
	if h.ttl > 0 {
		p.PExpire(ctx, h.key, max(h.ttl, time.Millisecond))
	} else {
		p.Persist(ctx, h.key)
	}
}

// written tells the caller's hook that the entry is committed.
func (h *historyWrite) written() {
	if h != nil && h.meta.Written != nil {
		h.meta.Written(h.entry)
	}
}

// pttl reads the result of a queued PTTL as a time to live: 0 when the key
// never expires (or is missing).
func pttl(c *redis.DurationCmd) time.Duration {
	if c == nil {
		return 0
	}
	d, err := c.Result()
	if err != nil || d < 0 {
		return 0
	}
	return d
}

// fieldsOf is the hash fields (but order) of a document as stored.
func fieldsOf(enc *encoded) map[string]string {
	out := make(map[string]string, len(enc.fields))
	for f, b := range enc.fields {
		out[f] = string(b)
	}
	return out
}

// differ lists the leaf paths whose values differ between two versions of a
// document, at most MaxHistoryChanges of them (the rest counted in more).
type differ struct {
	redact     func(string) string
	valueBytes int
	changes    []history.Change
	more       int
}

func newDiffer(m *HistoryMeta) *differ {
	d := &differ{redact: m.Redact, valueBytes: m.ValueBytes}
	if d.redact == nil {
		d.redact = func(s string) string { return s }
	}
	if d.valueBytes <= 0 {
		d.valueBytes = DefaultHistoryValueBytes
	}
	return d
}

// field diffs the stored JSON of one hash field ("t:<key>" is path <key>,
// "s:<key>" is state.<key>).
func (d *differ) field(f, old, new string, hasOld, hasNew bool) {
	path, ok := strings.CutPrefix(f, topPrefix)
	if !ok {
		k, _ := strings.CutPrefix(f, statePrefix)
		path = stateKey + "." + k
	}
	parse := func(raw string, has bool) any {
		if !has {
			return nil
		}
		v, err := document.ParseJSON([]byte(raw))
		if err != nil { // not ours to judge here: keep the text as it is
			return raw
		}
		return v
	}
	d.diff(path, parse(old, hasOld), parse(new, hasNew), hasOld, hasNew)
}

// diff walks two values at path: maps key by key, anything else (lists
// included) as one value.
func (d *differ) diff(path string, old, new any, hasOld, hasNew bool) {
	if hasOld && hasNew {
		om, oIsMap := old.(*document.Map)
		nm, nIsMap := new.(*document.Map)
		if oIsMap && nIsMap {
			for _, k := range om.Keys() {
				ov, _ := om.Get(k)
				nv, has := nm.Get(k)
				d.diff(path+"."+k, ov, nv, true, has)
			}
			for _, k := range nm.Keys() {
				if !om.Has(k) {
					nv, _ := nm.Get(k)
					d.diff(path+"."+k, nil, nv, false, true)
				}
			}
			return
		}
	}
	var ob, nb []byte
	if hasOld {
		ob, _ = document.MarshalJSON(old, document.JSONStyle{})
	}
	if hasNew {
		nb, _ = document.MarshalJSON(new, document.JSONStyle{})
	}
	if hasOld == hasNew && string(ob) == string(nb) {
		return
	}
	if len(d.changes) >= MaxHistoryChanges {
		d.more++
		return
	}
	c := history.Change{Path: d.redact(path)}
	if hasOld {
		c.Old, c.OldBytes = d.value(ob)
	}
	if hasNew {
		c.New, c.NewBytes = d.value(nb)
	}
	d.changes = append(d.changes, c)
}

// value is the redacted JSON of a value, cut at the byte bound (on a rune
// boundary) with its full size, or whole with size 0. Redacted before it is
// cut, so that no part of a secret survives a cut.
func (d *differ) value(b []byte) (string, int) {
	s := d.redact(string(b))
	if len(s) <= d.valueBytes {
		return s, 0
	}
	cut := d.valueBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], len(s)
}

// oneNode says whether one node holds every key (a single Redis, Sentinel's
// primary): a transaction may then hold keys of several hash slots, and a
// WATCH may go in a pipeline. A Cluster client needs the keys of a WATCH
// first, to choose their node, and refuses a MULTI across slots.
func (s *Store) oneNode() bool { return s.topology != Cluster }

// The index of a namespace's contexts is written with each write of one of
// them. The index key is in another hash slot than the context's: on one node
// it goes in the write's MULTI (queueIndex: the index is exact, at no extra
// round trip); on a Cluster it is written after EXEC (indexWrite: best effort,
// the next write repairs it).

// queueIndex queues the index write into the transaction p of a write of ref,
// on one node.
func (s *Store) queueIndex(ctx context.Context, p redis.Pipeliner, ref string) {
	if s.oneNode() {
		ns, id, _ := strings.Cut(ref, "/")
		queueIndexWrite(ctx, p, s.ContextsKey(ns), id)
	}
}

// queueIndexWrite scores id in the index k and keeps the index bounded.
func queueIndexWrite(ctx context.Context, p redis.Pipeliner, k, id string) {
	p.ZAdd(ctx, k, redis.Z{Score: float64(time.Now().UnixMilli()), Member: id})
	p.ZRemRangeByRank(ctx, k, 0, -MaxIndexedContexts-1)
}

// indexWrite scores the context of ref in the index of its namespace after a
// committed write, on a Cluster.
func (s *Store) indexWrite(ctx context.Context, ref string) {
	ns, id, _ := strings.Cut(ref, "/")
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		queueIndexWrite(ctx, p, s.ContextsKey(ns), id)
		return nil
	})
}

// committed is what follows a committed write: the index of the namespace
// where the transaction did not hold it, then the caller's hook.
func (s *Store) committed(ctx context.Context, ref string, h *historyWrite) {
	if !s.oneNode() {
		s.indexWrite(ctx, ref)
	}
	h.written()
}

// History reads the history of ref, newest entry first, at most limit entries
// (limit <= 0: all that are kept). ErrNotFound when the context does not
// exist (its history is gone with it).
func (s *Store) History(ctx context.Context, ref string, limit int) ([]history.Entry, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	key, hk := s.DocKey(ref), s.HistoryKey(ref)
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit - 1)
	}
	var exists *redis.IntCmd
	var items *redis.StringSliceCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, key)
		items = p.LRange(ctx, hk, 0, stop)
		return nil
	})
	if err != nil {
		return nil, s.wrap(err, "LRANGE", hk)
	}
	if exists.Val() == 0 {
		return nil, s.notFound(ref)
	}
	out := make([]history.Entry, 0, len(items.Val()))
	for i, raw := range items.Val() {
		var e history.Entry
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, s.malformed(hk, "", fmt.Errorf("entry %d: %v", i, err))
		}
		out = append(out, e)
	}
	return out, nil
}

// pruneScript removes members of an index whose score is still the one read
// (a context written again since it was found gone has a newer score and
// stays). KEYS: the index. ARGV: member, score, member, score...
var pruneScript = LazyScript(`
local n = 0
for i = 1, #ARGV, 2 do
  local cur = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if cur and tonumber(cur) == tonumber(ARGV[i+1]) then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
`)

// ContextSummary is one context of a namespace: its id and when it was last
// written.
type ContextSummary struct {
	ID      string    `json:"id"`
	Updated time.Time `json:"updated"`
}

// Contexts lists the contexts of namespace that still exist, most recently
// written first, at most limit of them (limit <= 0: all the index keeps,
// MaxIndexedContexts). Members of the index whose context is gone (expired,
// deleted) are removed on the way.
func (s *Store) Contexts(ctx context.Context, namespace string, limit int) ([]ContextSummary, error) {
	if err := CheckNamespace(namespace); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxIndexedContexts {
		limit = MaxIndexedContexts
	}
	k := s.ContextsKey(namespace)
	var out []ContextSummary
	var gone []any // member, score read: pairs for pruneScript
	batch := int64(min(limit, 500))
	for start := int64(0); len(out) < limit; start += batch {
		zs, err := s.rdb.ZRevRangeWithScores(ctx, k, start, start+batch-1).Result()
		if err != nil {
			return nil, s.wrap(err, "ZREVRANGE", k)
		}
		exists := make([]*redis.IntCmd, len(zs))
		if len(zs) > 0 {
			_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, z := range zs {
					id, _ := z.Member.(string)
					exists[i] = p.Exists(ctx, s.DocKey(Ref(namespace, id)))
				}
				return nil
			})
			if err != nil {
				return nil, s.wrap(err, "EXISTS", s.DocKey(Ref(namespace, "*")))
			}
		}
		for i, z := range zs {
			id, _ := z.Member.(string)
			if exists[i].Val() == 0 {
				gone = append(gone, id, strconv.FormatFloat(z.Score, 'f', -1, 64))
				continue
			}
			if len(out) < limit {
				out = append(out, ContextSummary{ID: id, Updated: time.UnixMilli(int64(z.Score)).UTC()})
			}
		}
		if int64(len(zs)) < batch {
			break
		}
	}
	if len(gone) > 0 {
		// Best effort, like the index itself: a failed prune is done again by
		// the next Contexts.
		_ = pruneScript().Run(ctx, s.rdb, []string{k}, gone...).Err()
	}
	return out, nil
}
