package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// sorted copies a MigrateResult with its lists sorted, nil for empty.
func sorted(r *store.MigrateResult) store.MigrateResult {
	if r == nil {
		return store.MigrateResult{}
	}
	s := func(l []string) []string {
		if len(l) == 0 {
			return nil
		}
		return slices.Sorted(slices.Values(l))
	}
	return store.MigrateResult{Moved: s(r.Moved), Conflicts: s(r.Conflicts), Invalid: s(r.Invalid), Missing: s(r.Missing)}
}

func checkMigrate(t *testing.T, what string, got *store.MigrateResult, err error, want store.MigrateResult) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if g := sorted(got); !reflect.DeepEqual(g, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, want)
	}
}

// keyState is what a key holds: its type, value and TTL.
func keyState(t *testing.T, ctx context.Context, key string) string {
	t.Helper()
	rdb := srv.Client()
	typ, err := rdb.Type(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	var v any
	switch typ {
	case "string":
		v, err = rdb.Get(ctx, key).Result()
	case "hash":
		v, err = rdb.HGetAll(ctx, key).Result()
	}
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl > 0 {
		ttl = ttl.Round(time.Hour) // PTTL goes down while the test runs
	}
	return fmt.Sprintf("%s %v ttl %v", typ, v, ttl)
}

func TestMigrate(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 30*time.Second)
	rdb := srv.Client()
	hashDoc := mustYAML(t, sample)
	const raw = `{"a":1,"state":{"x":"y"}}`
	// Contexts of the former layouts, under <prefix>:ctx:<id>: hashes and JSON strings,
	// with and without TTL.
	legacyHash := func(id string, ttl time.Duration) {
		t.Helper()
		var fields []any
		for f, v := range hashOf(t, hashDoc) {
			fields = append(fields, f, v)
		}
		if err := rdb.HSet(ctx, st.LegacyDocKey(id), fields...).Err(); err != nil {
			t.Fatal(err)
		}
		if ttl > 0 {
			if err := rdb.Expire(ctx, st.LegacyDocKey(id), ttl).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	legacyString := func(id string, ttl time.Duration) {
		t.Helper()
		if err := rdb.Set(ctx, st.LegacyDocKey(id), raw, ttl).Err(); err != nil {
			t.Fatal(err)
		}
	}
	legacyHash("h-ttl", time.Hour)
	legacyString("s", 0)
	legacyString("s-ttl", 2*time.Hour)
	legacyString("a{b}:c", 0)
	legacyString("x/y", 0)      // cannot be an id any more
	legacyString("conflict", 0) // the namespace has its own
	legacyString("f1", 0)
	legacyString("f2", 0)
	if _, _, err := st.Put(ctx, "ns/conflict", mustYAML(t, "mine: 1"), store.PutOptions{TTL: 3 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	all := []string{"h-ttl", "s", "s-ttl", "a{b}:c", "x/y", "conflict", "f1", "f2"}
	before := map[string]string{}
	for _, id := range all {
		before[st.LegacyDocKey(id)] = keyState(t, ctx, st.LegacyDocKey(id))
	}
	before[st.DocKey("ns/conflict")] = keyState(t, ctx, st.DocKey("ns/conflict"))
	unchanged := func(what string, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if got := keyState(t, ctx, k); got != before[k] {
				t.Fatalf("%s: %s holds %s, was %s", what, k, got, before[k])
			}
		}
	}
	legacyKeys := func(ids ...string) []string {
		var keys []string
		for _, id := range ids {
			keys = append(keys, st.LegacyDocKey(id))
		}
		return keys
	}

	if _, err := st.Migrate(ctx, "Bad_NS", nil, false); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("bad namespace: %v", err)
	}

	// Only the ids asked for; the missing and repeated ones reported once.
	res, err := st.Migrate(ctx, "ns", []string{"f1", "nope", "f1", "conflict", "x/y"}, false)
	checkMigrate(t, "ids", res, err, store.MigrateResult{
		Moved: []string{"f1"}, Conflicts: []string{"conflict"}, Invalid: []string{"x/y"}, Missing: []string{"nope"}})
	if d, err := st.Get(ctx, "ns/f1"); err != nil || mustJSON(t, d) != raw {
		t.Fatalf("Get(ns/f1) = %v, %v", d, err)
	}
	unchanged("ids", append(legacyKeys("h-ttl", "s", "s-ttl", "a{b}:c", "x/y", "conflict", "f2"), st.DocKey("ns/conflict"))...)

	// A dry run reports and moves nothing.
	want := store.MigrateResult{
		Moved:     []string{"a{b}:c", "f2", "h-ttl", "s", "s-ttl"},
		Conflicts: []string{"conflict"},
		Invalid:   []string{"x/y"},
	}
	res, err = st.Migrate(ctx, "ns", nil, true)
	checkMigrate(t, "dry run", res, err, want)
	unchanged("dry run", append(legacyKeys("h-ttl", "s", "s-ttl", "a{b}:c", "x/y", "conflict", "f2"), st.DocKey("ns/conflict"))...)
	for _, id := range want.Moved {
		if ok, err := st.Exists(ctx, "ns/"+id); ok || err != nil {
			t.Fatalf("dry run created ns/%s: %v", id, err)
		}
	}

	// The real thing.
	res, err = st.Migrate(ctx, "ns", nil, false)
	checkMigrate(t, "migrate", res, err, want)
	for _, id := range want.Moved {
		if n, err := rdb.Exists(ctx, st.LegacyDocKey(id)).Result(); n != 0 || err != nil {
			t.Fatalf("%s still at its legacy key: %v", id, err)
		}
	}
	if d, err := st.Get(ctx, "ns/h-ttl"); err != nil || mustJSON(t, d) != mustJSON(t, hashDoc) {
		t.Fatalf("Get(ns/h-ttl) = %v, %v", d, err)
	}
	for _, id := range []string{"s", "s-ttl", "a{b}:c"} {
		if d, err := st.Get(ctx, "ns/"+id); err != nil || mustJSON(t, d) != raw {
			t.Fatalf("Get(ns/%s) = %v, %v", id, d, err)
		}
	}
	for id, want := range map[string]time.Duration{"h-ttl": time.Hour, "s-ttl": 2 * time.Hour, "s": 0} {
		ttl, err := st.TTL(ctx, "ns/"+id)
		if err != nil || ttl > want || (want > 0 && ttl < want-time.Minute) {
			t.Fatalf("TTL(ns/%s) = %v, %v; want %v", id, ttl, err, want)
		}
	}
	unchanged("conflict and invalid", append(legacyKeys("x/y", "conflict"), st.DocKey("ns/conflict"))...)
	// A moved context of the string layout is a context like any other.
	if _, _, err := st.Update(ctx, "ns/s-ttl", "op", setFn([2]any{"state.x", "z"})); err != nil {
		t.Fatal(err)
	}
	if d, _ := st.Get(ctx, "ns/s-ttl"); mustJSON(t, d) != `{"a":1,"state":{"x":"z"}}` {
		t.Fatalf("ns/s-ttl after Update = %s", mustJSON(t, d))
	}
	if ttl, err := st.TTL(ctx, "ns/s-ttl"); err != nil || ttl < 2*time.Hour-time.Minute {
		t.Fatalf("TTL(ns/s-ttl) after Update = %v, %v", ttl, err)
	}

	// Again: nothing more moves.
	res, err = st.Migrate(ctx, "ns", nil, false)
	checkMigrate(t, "again", res, err, store.MigrateResult{Conflicts: []string{"conflict"}, Invalid: []string{"x/y"}})
	unchanged("again", append(legacyKeys("x/y", "conflict"), st.DocKey("ns/conflict"))...)

	// The conflict can go to another namespace.
	res, err = st.Migrate(ctx, "other", []string{"conflict"}, false)
	checkMigrate(t, "other namespace", res, err, store.MigrateResult{Moved: []string{"conflict"}})
	if d, err := st.Get(ctx, "other/conflict"); err != nil || mustJSON(t, d) != raw {
		t.Fatalf("Get(other/conflict) = %v, %v", d, err)
	}
	if d, err := st.Get(ctx, "ns/conflict"); err != nil || mustJSON(t, d) != `{"mine":1}` {
		t.Fatalf("Get(ns/conflict) = %v, %v", d, err)
	}

	// A context that goes between SCAN and RENAMENX is reported missing, not an error.
	var r store.MigrateResult
	if err := st.MigrateOne(ctx, "ns", "gone", false, &r); err != nil || !reflect.DeepEqual(sorted(&r), store.MigrateResult{Missing: []string{"gone"}}) {
		t.Fatalf("MigrateOne(gone) = %+v, %v", r, err)
	}
}

// TestMigrateGlobPrefix: a key prefix holding glob characters matches only its own
// keys of the former layout.
func TestMigrateGlobPrefix(t *testing.T) {
	n := prefixSeq.Add(1)
	o := opts(t, srv)
	o.KeyPrefix = fmt.Sprintf(`m%d[x]?*\`, n)
	st := newStore(t, o)
	ctx := testCtx(t, 10*time.Second)
	rdb := srv.Client()
	// Keys the unescaped pattern m<n>[x]?*\:ctx:* would match, and some it would not.
	decoys := []string{
		fmt.Sprintf("m%dxA:ctx:d1", n),
		fmt.Sprintf("m%dxABC:ctx:d2", n),
		fmt.Sprintf(`m%dxQ\:ctx:d3`, n),
		fmt.Sprintf("m%d[x]?*:ctx:d4", n),
		fmt.Sprintf(`m%d[x]?*\\:ctx:d5`, n),
	}
	for _, k := range append(decoys, st.LegacyDocKey("mine")) {
		if err := rdb.Set(ctx, k, `{"a":1}`, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, dry := range []bool{true, false} {
		res, err := st.Migrate(ctx, "ns", nil, dry)
		checkMigrate(t, fmt.Sprintf("dry run %v", dry), res, err, store.MigrateResult{Moved: []string{"mine"}})
	}
	if d, err := st.Get(ctx, "ns/mine"); err != nil || mustJSON(t, d) != `{"a":1}` {
		t.Fatalf("Get(ns/mine) = %v, %v", d, err)
	}
	for _, k := range decoys {
		if v, err := rdb.Get(ctx, k).Result(); err != nil || v != `{"a":1}` {
			t.Fatalf("decoy %s = %q, %v", k, v, err)
		}
	}
}
