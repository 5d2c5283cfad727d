package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/internal/fuzzbudget"
	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// crc16 is the CRC16 of Redis Cluster (XMODEM: polynomial 0x1021, initial value 0).
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for i := 0; i < 8; i++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// hashTag is what Redis Cluster hashes of key: between the first '{' and the first
// '}' after it when that is not empty (ok), else the whole key.
func hashTag(key string) (tag string, ok bool) {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			return key[s+1 : s+1+e], true
		}
	}
	return key, false
}

// keySlot is the Redis Cluster hash slot of key.
func keySlot(key string) int {
	tag, _ := hashTag(key)
	return int(crc16([]byte(tag)) % 16384)
}

// unescapeID decodes the id in a hash tag, accepting only the three escapes the
// store writes (so that an escaping that is not canonical fails too).
func unescapeID(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		switch s[i+1 : i+3] {
		case "25":
			b.WriteByte('%')
		case "7B":
			b.WriteByte('{')
		case "7D":
			b.WriteByte('}')
		default:
			return "", fmt.Errorf("unknown escape %q in %q", s[i:i+3], s)
		}
		i += 2
	}
	return b.String(), nil
}

// keyPrefix is the key prefix of st.
func keyPrefix(st *store.Store) string { return strings.TrimSuffix(st.OpKey(""), ":op:") }

func TestKeySlotImplementation(t *testing.T) {
	// The check value of CRC16/XMODEM and the examples of the Redis Cluster spec.
	if c := crc16([]byte("123456789")); c != 0x31C3 {
		t.Fatalf("crc16 = %#x", c)
	}
	for key, slot := range map[string]int{"foo": 12182, "bar": 5061, "{foo}:x": 12182, "a{bar}b{foo}": 5061} {
		if got := keySlot(key); got != slot {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, slot)
		}
	}
	if keySlot("{user1000}.following") != keySlot("{user1000}.followers") {
		t.Error("same tag, different slots")
	}
	for key, tag := range map[string]string{"foo{}{bar}": "foo{}{bar}", "foo{{bar}}zap": "{bar", "foo{bar}{zap}": "bar", "{": "{", "}{": "}{"} {
		if got, _ := hashTag(key); got != tag {
			t.Errorf("hashTag(%q) = %q, want %q", key, got, tag)
		}
	}
}

// keyCases are ids whose keys must stay apart and keep their hash tag, with the tag
// their document key has.
var keyCases = []struct{ ns, id, tag string }{
	{"ns", "x", "ns/x"},
	{"other", "x", "other/x"},
	{"ns", "x}:op:y", "ns/x%7D:op:y"},
	{"ns", "x}:ctx", "ns/x%7D:ctx"},
	{"ns", "}", "ns/%7D"},
	{"ns", "{", "ns/%7B"},
	{"ns", "{}", "ns/%7B%7D"},
	{"ns", "}{", "ns/%7D%7B"},
	{"ns", "a{b}c", "ns/a%7Bb%7Dc"},
	{"ns", "%", "ns/%25"},
	{"ns", "%7D", "ns/%257D"},
	{"ns", "%25", "ns/%2525"},
	{"ns", "a:b c", "ns/a:b c"},
	{"ns", " ", "ns/ "},
	{"ns", ":ctx", "ns/:ctx"},
	{"ns", "*?[x]\\", "ns/*?[x]\\"},
	{"ns", "ünï\x00\n\xff", "ns/ünï\x00\n\xff"},
	{"a-1", "}}}", "a-1/%7D%7D%7D"},
}

// opKeys are op keys tried against every context of keyCases.
var opKeys = []string{"run/1", "y}:ctx", "}", "{x}", ":ctx", "x"}

// TestKeyLayout: the keys of a context carry the hash tag {<ns>/<escaped id>}
// exactly, the document and its op records share a hash slot, and no two keys of
// different things are the same Redis key.
func TestKeyLayout(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 30*time.Second)
	prefix := keyPrefix(st)
	owner := map[string]string{} // Redis key -> what it is
	legacyIDs := map[string]bool{}
	own := func(key, what string) {
		t.Helper()
		if prev, dup := owner[key]; dup {
			t.Errorf("%s and %s are both Redis key %q", prev, what, key)
		}
		owner[key] = what
	}
	for _, c := range keyCases {
		ref := store.Ref(c.ns, c.id)
		doc := st.DocKey(ref)
		if want := prefix + ":{" + c.tag + "}:ctx"; doc != want {
			t.Errorf("DocKey(%q) = %q, want %q", ref, doc, want)
		}
		if tag, ok := hashTag(doc); !ok || tag != c.tag {
			t.Errorf("hash tag of DocKey(%q) = %q, want %q", ref, tag, c.tag)
		}
		own(doc, "document of "+ref)
		hk := st.HistoryKey(ref)
		if tag, ok := hashTag(hk); !ok || tag != c.tag || hk != prefix+":{"+c.tag+"}:history" {
			t.Errorf("HistoryKey(%q) = %q: tag %q, want %q", ref, hk, tag, c.tag)
		}
		own(hk, "history of "+ref)
		if _, done := owner[st.ContextsKey(c.ns)]; !done {
			own(st.ContextsKey(c.ns), "index of namespace "+c.ns)
		}
		for _, op := range opKeys {
			k := st.DocOpKey(ref, op)
			if want := prefix + ":{" + c.tag + "}:op:" + op; k != want {
				t.Errorf("DocOpKey(%q, %q) = %q, want %q", ref, op, k, want)
			}
			if tag, ok := hashTag(k); !ok || tag != c.tag || keySlot(k) != keySlot(doc) {
				t.Errorf("DocOpKey(%q, %q): tag %q slot %d, document slot %d", ref, op, tag, keySlot(k), keySlot(doc))
			}
			own(k, fmt.Sprintf("op record %q of %s", op, ref))
		}
		if !legacyIDs[c.id] { // x is in two namespaces, with one legacy key
			legacyIDs[c.id] = true
			own(st.LegacyDocKey(c.id), "legacy document of "+c.id)
		}
	}
	for _, k := range append(opKeys, "ns/x", "{ns/x}:ctx") {
		own(st.OpKey(k), fmt.Sprintf("standalone op record %q", k))
		own(st.ClaimKey(k), fmt.Sprintf("claim %q", k))
	}
	// The example of an id that would close the tag: without the escape, the
	// document of ns/x}:op:y and the record y}:ctx of ns/x would be one key.
	if st.DocKey("ns/x}:op:y") == st.DocOpKey("ns/x", "y}:ctx") {
		t.Fatal("document and op record collide")
	}

	// Every context is its own document, its op records its own.
	for i, c := range keyCases {
		ref := store.Ref(c.ns, c.id)
		if _, _, err := st.Put(ctx, ref, mustYAML(t, fmt.Sprintf("i: %d\nstate: {items: []}", i)), store.PutOptions{OpKey: "put", Result: []byte(ref)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range keyCases {
		ref := store.Ref(c.ns, c.id)
		res, replayed, err := st.Update(ctx, ref, "y}:ctx", appendItem(ref))
		if err != nil || replayed || string(res) != "appended "+ref+" at 0" {
			t.Fatalf("Update(%q) = %q %v %v", ref, res, replayed, err)
		}
		d, err := st.Get(ctx, ref)
		if want := fmt.Sprintf(`{"i":%d,"state":{"items":[%s]}}`, i, mustJSON(t, ref)); err != nil || mustJSON(t, d) != want {
			t.Fatalf("Get(%q) = %s, %v; want %s", ref, mustJSON(t, d), err, want)
		}
		if r, ok := docOpRecord(t, st, ref, "put"); !ok || string(r) != ref {
			t.Fatalf("put record of %q = %q %v", ref, r, ok)
		}
	}
	// The store wrote exactly these keys: one document and two records per
	// context, and the index of each namespace.
	namespaces := map[string]bool{}
	for _, c := range keyCases {
		namespaces[c.ns] = true
	}
	var keys []string
	iter := srv.Client().Scan(ctx, 0, "", 1000).Iterator()
	for iter.Next(ctx) {
		if strings.HasPrefix(iter.Val(), prefix+":") {
			keys = append(keys, iter.Val())
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3*len(keyCases)+len(namespaces) {
		t.Fatalf("%d keys, want %d: %q", len(keys), 3*len(keyCases)+len(namespaces), keys)
	}

	// The same id in two namespaces: two documents, independent.
	if _, err := st.Delete(ctx, "other/x"); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Exists(ctx, "ns/x"); !ok || err != nil {
		t.Fatalf("ns/x after deleting other/x: %v %v", ok, err)
	}
	if err := st.Expire(ctx, "ns/x", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Put(ctx, "other/x", mustYAML(t, "a: 1"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if ttl, err := st.TTL(ctx, "other/x"); ttl != 0 || err != nil {
		t.Fatalf("TTL of other/x = %v, %v", ttl, err)
	}
	if d, _ := st.Get(ctx, "other/x"); mustJSON(t, d) != `{"a":1}` {
		t.Fatalf("other/x = %s", mustJSON(t, d))
	}
}

// TestKeysShareASlotOnRedisCluster runs the store against a one-node Redis Cluster
// (all slots on it), which refuses a transaction or WATCH over keys of two slots
// (CROSSSLOT): every exactly-once write must keep its keys in one slot. It also
// checks keySlot against the server's CLUSTER KEYSLOT.
func TestKeysShareASlotOnRedisCluster(t *testing.T) {
	s := redistest.Start(t, redistest.WithDefaultUserDisabled(),
		redistest.WithConfig("cluster-enabled yes", "cluster-config-file nodes.conf"))
	ctx := testCtx(t, time.Minute)
	rdb := s.Client()
	if err := rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	for {
		info, err := rdb.ClusterInfo(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster not ready:\n%s", info)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// a store of the Cluster topology, as a Redis Cluster is configured
	o := opts(t, s)
	o.ClusterAddrs, o.Addr = []string{o.Addr}, ""
	st := newStore(t, o)
	// The server enforces slots: a transaction over a document and a standalone
	// record fails.
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, st.DocKey("ns/x"), "1", 0)
		p.Set(ctx, st.OpKey("x"), "1", 0)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("a cross-slot transaction: %v", err)
	}
	for _, c := range keyCases {
		ref := store.Ref(c.ns, c.id)
		for _, k := range []string{st.DocKey(ref), st.DocOpKey(ref, "y}:ctx"), st.LegacyDocKey(c.id), st.HistoryKey(ref), st.ContextsKey(c.ns)} {
			slot, err := rdb.ClusterKeySlot(ctx, k).Result()
			if err != nil || int(slot) != keySlot(k) {
				t.Errorf("CLUSTER KEYSLOT %q = %d, %v; keySlot = %d", k, slot, err, keySlot(k))
			}
		}
		// with their history entries, in the same transactions
		hctx := store.WithHistory(ctx, store.HistoryMeta{Op: "set"})
		if _, _, err := st.Put(hctx, ref, mustYAML(t, sample), store.PutOptions{OpKey: "put", TTL: time.Hour}); err != nil {
			t.Fatalf("Put(%q): %v", ref, err)
		}
		if _, _, err := st.Update(hctx, ref, "y}:ctx", appendItem("a")); err != nil {
			t.Fatalf("Update(%q): %v", ref, err)
		}
		if _, _, err := st.UpdatePaths(hctx, ref, "}", []string{"state.items"}, appendItem("b")); err != nil {
			t.Fatalf("UpdatePaths(%q): %v", ref, err)
		}
		for op, want := range map[string]string{"y}:ctx": "appended a at 0", "}": "appended b at 1"} {
			if r, replayed, err := st.Update(ctx, ref, op, appendItem("z")); err != nil || !replayed || string(r) != want {
				t.Fatalf("replay %q of %q: %q %v %v", op, ref, r, replayed, err)
			}
		}
		if got := items(t, st, ref); len(got) != 2 {
			t.Fatalf("items of %q = %v", ref, got)
		}
		if h, err := st.History(ctx, ref, 0); err != nil || len(h) != 3 {
			t.Fatalf("History(%q): %d entries, %v", ref, len(h), err)
		}
	}
	if cs, err := st.Contexts(ctx, "ns", 0); err != nil || len(cs) == 0 {
		t.Fatalf("Contexts(ns): %v %v", cs, err)
	}
	if _, err := st.Delete(ctx, "ns/x"); err != nil {
		t.Fatalf("Delete on a Cluster: %v", err)
	}
}

// FuzzRefKeys: for every valid ref, the document key is the prefix, the hash tag
// {<ns>/<escaped id>} and ":ctx" (no '{' or '}' left in the escaped id), the tag
// decodes back to the ref (so DocKey is injective), the op records share the tag,
// and two different refs never share a key; making and splitting keys stays
// within the input's resource budget (internal/fuzzbudget).
func FuzzRefKeys(f *testing.F) {
	f.Add("ns", "x}:op:y", "ns", "x", "y}:ctx")
	f.Add("ns", "%7D", "ns", "}", "op")
	f.Add("ns", "%257D", "ns", "%7D", "")
	f.Add("a", "b/c", "a-b", "c", "x")
	f.Add("ns", "{ns/x}", "ns", "%7Bns/x%7D", "}:ctx")
	f.Add("ns", "{x}", "ns", "%7Bx%7D", "{")
	f.Add("Upper", "x", "ns", "", "o")
	f.Add("!Upper", "x", "!-ns", "x", "o")
	st, err := store.New(store.Options{KeyPrefix: "fz:p[*]"})
	if err != nil {
		f.Fatal(err)
	}
	prefix := keyPrefix(st)
	f.Fuzz(func(t *testing.T, ns1, id1, ns2, id2, opKey string) {
		fuzzbudget.Check(t, fuzzbudget.For(fuzzbudget.Size(ns1, id1, ns2, id2, opKey), 0), func() {
			for _, r := range [][2]string{{ns1, id1}, {ns2, id2}} {
				ref := store.Ref(fuzzNamespace(r[0]), r[1])
				_, _, _ = store.SplitRef(ref)
				_ = st.DocKey(ref)
				_ = st.DocOpKey(ref, opKey)
			}
		}, ns1, id1, ns2, id2, opKey)
		ns1, ns2 = fuzzNamespace(ns1), fuzzNamespace(ns2)
		type ref struct{ ns, id string }
		var refs []ref
		for _, r := range []ref{{ns1, id1}, {ns2, id2}} {
			valid := store.CheckNamespace(r.ns) == nil && store.CheckID(r.id) == nil
			gotNS, gotID, err := store.SplitRef(store.Ref(r.ns, r.id))
			if valid != (err == nil) {
				t.Fatalf("SplitRef(Ref(%q, %q)): %v, checks say valid=%v", r.ns, r.id, err, valid)
			}
			if !valid {
				continue
			}
			if gotNS != r.ns || gotID != r.id {
				t.Fatalf("SplitRef(Ref(%q, %q)) = %q, %q", r.ns, r.id, gotNS, gotID)
			}
			refs = append(refs, r)
			key := st.DocKey(store.Ref(r.ns, r.id))
			tag, ok := hashTag(key)
			if !ok || key != prefix+":{"+tag+"}:ctx" {
				t.Fatalf("DocKey(%q/%q) = %q: hash tag %q is not the whole {…} of the key", r.ns, r.id, key, tag)
			}
			ns, esc, _ := strings.Cut(tag, "/")
			id, err := unescapeID(esc)
			if err != nil || ns != r.ns || id != r.id || strings.ContainsAny(esc, "{}") {
				t.Fatalf("DocKey(%q/%q) = %q decodes to %q/%q (%v)", r.ns, r.id, key, ns, id, err)
			}
			if opKey != "" {
				k := st.DocOpKey(store.Ref(r.ns, r.id), opKey)
				if ot, _ := hashTag(k); ot != tag || k != prefix+":{"+tag+"}:op:"+opKey || k == key {
					t.Fatalf("DocOpKey(%q/%q, %q) = %q, document key %q", r.ns, r.id, opKey, k, key)
				}
			}
		}
		if len(refs) != 2 || refs[0] == refs[1] {
			return
		}
		r1, r2 := store.Ref(refs[0].ns, refs[0].id), store.Ref(refs[1].ns, refs[1].id)
		if st.DocKey(r1) == st.DocKey(r2) {
			t.Fatalf("%q and %q share document key %q", r1, r2, st.DocKey(r1))
		}
		if opKey != "" && (st.DocOpKey(r1, opKey) == st.DocOpKey(r2, opKey) ||
			st.DocOpKey(r1, opKey) == st.DocKey(r2) || st.DocOpKey(r2, opKey) == st.DocKey(r1)) {
			t.Fatalf("keys of %q and %q collide (op key %q)", r1, r2, opKey)
		}
	})
}

// fuzzNamespace keeps a valid namespace, and makes most other inputs one (lower
// case, only letters, digits and '-', at most 63 bytes), so that the fuzzer spends
// its time on ids; an input that is still invalid exercises the checks.
func fuzzNamespace(s string) string {
	if store.CheckNamespace(s) == nil || strings.HasPrefix(s, "!") {
		return strings.TrimPrefix(s, "!")
	}
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		}
		return -1
	}, s)
	s = strings.Trim(s, "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	if s == "" {
		return "ns"
	}
	return s
}
