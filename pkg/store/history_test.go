package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// recorder collects the entries a HistoryMeta's Written hook is given.
type recorder struct {
	mu      sync.Mutex
	entries []history.Entry
}

func (r *recorder) meta(op string, who history.Who) store.HistoryMeta {
	return store.HistoryMeta{Op: op, Who: who, Written: func(e history.Entry) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.entries = append(r.entries, e)
	}}
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

func historyOf(t *testing.T, st *store.Store, ref string) []history.Entry {
	t.Helper()
	h, err := st.History(context.Background(), ref, 0)
	if err != nil {
		t.Fatalf("History(%s): %v", ref, err)
	}
	return h
}

func changeAt(e history.Entry, path string) (history.Change, bool) {
	for _, c := range e.Changes {
		if c.Path == path {
			return c, true
		}
	}
	return history.Change{}, false
}

func setState(key string, v any) store.UpdateFunc {
	return func(d *document.Map) (bool, []byte, error) {
		return true, nil, document.SetPath(d, "state."+key, v)
	}
}

// TestHistoryOfPutUpdateAndUpdatePaths: each write that changes the context
// appends one entry (newest first) with the op, who and the leaf paths that
// changed with their old and new values; a write that changes nothing, and a
// write without HistoryMeta, append none. Written sees every entry stored.
func TestHistoryOfPutUpdateAndUpdatePaths(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 20*time.Second)
	ref := "team-a/app-1"
	var rec recorder
	who := history.Who{Namespace: "team-a", CustomRun: "run-1", PipelineRun: "pr-1", PipelineTask: "init"}
	doc := mustYAML(t, "pipelines: {build: {}}\nstate:\n  build: {version: 1, tags: [a]}\n  name: x\n")
	if _, _, err := st.Put(store.WithHistory(ctx, rec.meta("init", who)), ref, doc, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	h := historyOf(t, st, ref)
	if len(h) != 1 || h[0].Op != "init" || h[0].Who != who || len(h[0].Changes) != 3 {
		t.Fatalf("after Put: %+v", h)
	}
	if c, ok := changeAt(h[0], "state.build"); !ok || c.Old != "" || c.New != `{"version":1,"tags":["a"]}` {
		t.Fatalf("Put change of state.build: %+v %v", c, ok)
	}

	// Update: a leaf below a map is named by its full path.
	who2 := history.Who{User: "alice", Via: "cli"}
	_, _, err := st.Update(store.WithHistory(ctx, rec.meta("set", who2)), ref, "", func(d *document.Map) (bool, []byte, error) {
		_ = document.SetPath(d, "state.build.version", 2)
		_ = document.SetPath(d, "state.build.branch", "main")
		s, _ := d.GetMap("state")
		s.Delete("name")
		return true, nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h = historyOf(t, st, ref)
	if len(h) != 2 || h[0].Op != "set" || h[0].Who != who2 || h[1].Op != "init" {
		t.Fatalf("after Update: %+v", h)
	}
	want := []history.Change{
		{Path: "state.build.version", Old: "1", New: "2"},
		{Path: "state.build.branch", New: `"main"`},
		{Path: "state.name", Old: `"x"`},
	}
	if fmt.Sprint(h[0].Changes) != fmt.Sprint(want) {
		t.Fatalf("Update changes:\n got %+v\nwant %+v", h[0].Changes, want)
	}

	// UpdatePaths reads part of the document; its entry is the same kind.
	if _, _, err := st.UpdatePaths(store.WithHistory(ctx, rec.meta("set", who)), ref, "", []string{"state.build.version"}, setState("build.version", 3)); err != nil {
		t.Fatal(err)
	}
	h = historyOf(t, st, ref)
	if len(h) != 3 || fmt.Sprint(h[0].Changes) != fmt.Sprint([]history.Change{{Path: "state.build.version", Old: "2", New: "3"}}) {
		t.Fatalf("after UpdatePaths: %+v", h[0])
	}

	// Nothing changed: no entry (Update says changed, the JSON is the same;
	// UpdatePaths likewise).
	if _, _, err := st.Update(store.WithHistory(ctx, rec.meta("set", who)), ref, "", setState("build.version", 3)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.UpdatePaths(store.WithHistory(ctx, rec.meta("set", who)), ref, "", []string{"state.build"}, setState("build.version", 3)); err != nil {
		t.Fatal(err)
	}
	// A write without HistoryMeta records nothing.
	if _, _, err := st.Update(ctx, ref, "", setState("other", 1)); err != nil {
		t.Fatal(err)
	}
	if h = historyOf(t, st, ref); len(h) != 3 {
		t.Fatalf("entries after writes that record nothing: %d, want 3", len(h))
	}
	if rec.len() != 3 {
		t.Fatalf("Written was called %d times, want 3", rec.len())
	}
	for i, e := range rec.entries {
		if got := h[len(h)-1-i]; fmt.Sprint(got.Changes) != fmt.Sprint(e.Changes) || !got.Time.Equal(e.Time) {
			t.Fatalf("Written entry %d = %+v, stored %+v", i, e, got)
		}
	}

	// A second Put (init again) records the difference with what it replaced.
	if _, _, err := st.Put(store.WithHistory(ctx, rec.meta("init", who)), ref, mustYAML(t, "pipelines: {build: {}}\nstate: {name: y}\n"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	h = historyOf(t, st, ref)
	if c, ok := changeAt(h[0], "state.name"); len(h) != 4 || !ok || c.Old != "" || c.New != `"y"` {
		t.Fatalf("re-Put: %+v", h[0])
	}
	if c, ok := changeAt(h[0], "state.build"); !ok || c.New != "" || c.Old == "" {
		t.Fatalf("re-Put, state.build removed: %+v", h[0])
	}
	if _, ok := changeAt(h[0], "pipelines"); ok {
		t.Fatalf("re-Put lists an unchanged key: %+v", h[0])
	}

	if _, err := st.History(ctx, "team-a/missing", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("History of a missing context: %v", err)
	}
	if _, err := st.History(ctx, "no-namespace", 0); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("History of a bad ref: %v", err)
	}
	if h, err := st.History(ctx, ref, 2); err != nil || len(h) != 2 || h[0].Op != "init" {
		t.Fatalf("History limit 2: %d %v", len(h), err)
	}
}

// TestHistoryReplayWritesNone: an op applied once and replayed (its op record
// found) has one entry.
func TestHistoryReplayWritesNone(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 20*time.Second)
	ref := "ns/replay"
	var rec recorder
	hctx := store.WithHistory(ctx, rec.meta("set", history.Who{User: "u"}))
	for i := 0; i < 3; i++ {
		if _, replayed, err := st.Put(hctx, ref, mustYAML(t, "state: {a: 1}"), store.PutOptions{OpKey: "init-1"}); err != nil || replayed != (i > 0) {
			t.Fatalf("Put %d: %v %v", i, replayed, err)
		}
		if _, replayed, err := st.Update(hctx, ref, "op-1", setState("a", 2)); err != nil || replayed != (i > 0) {
			t.Fatalf("Update %d: %v %v", i, replayed, err)
		}
		if _, replayed, err := st.UpdatePaths(hctx, ref, "op-2", []string{"state.a"}, setState("a", 3)); err != nil || replayed != (i > 0) {
			t.Fatalf("UpdatePaths %d: %v %v", i, replayed, err)
		}
	}
	if h := historyOf(t, st, ref); len(h) != 3 || rec.len() != 3 {
		t.Fatalf("entries %d, Written %d, want 3 and 3: %+v", len(h), rec.len(), h)
	}
}

// TestHistoryAtomicWithTheWrite: a write that fails (fn's error, the context
// budget) or loses its race (its MULTI/EXEC aborted) stores no entry; the
// attempt that commits stores exactly one, against what it replaced.
func TestHistoryAtomicWithTheWrite(t *testing.T) {
	o := opts(t, srv)
	o.MaxContextBytes = 4096
	st := newStore(t, o)
	ctx := testCtx(t, 20*time.Second)
	ref := "ns/atomic"
	var rec recorder
	hctx := store.WithHistory(ctx, rec.meta("set", history.Who{User: "u"}))
	if _, _, err := st.Put(ctx, ref, mustYAML(t, "state: {a: 1}"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, _, err := st.Update(hctx, ref, "", func(d *document.Map) (bool, []byte, error) {
		_ = document.SetPath(d, "state.a", 9)
		return true, nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	_, _, err = st.UpdatePaths(hctx, ref, "", []string{"state.big"}, setState("big", strings.Repeat("x", 5000)))
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("over the budget: %v", err)
	}
	if h := historyOf(t, st, ref); len(h) != 0 || rec.len() != 0 {
		t.Fatalf("failed writes left entries: %+v", h)
	}

	// The first attempt's EXEC is aborted: another client writes state.a
	// between its read and its write.
	attempts := 0
	for _, update := range []func(store.UpdateFunc) error{
		func(fn store.UpdateFunc) error { _, _, err := st.Update(hctx, ref, "", fn); return err },
		func(fn store.UpdateFunc) error {
			_, _, err := st.UpdatePaths(hctx, ref, "", []string{"state.a"}, fn)
			return err
		},
	} {
		attempts = 0
		err := update(func(d *document.Map) (bool, []byte, error) {
			attempts++
			if attempts == 1 {
				if _, _, err := st.Update(ctx, ref, "", setState("a", "racer")); err != nil {
					return false, nil, err
				}
			}
			v, _, _ := document.Lookup(d, "state.a")
			return true, nil, document.SetPath(d, "state.a", fmt.Sprintf("after-%v", v))
		})
		if err != nil || attempts != 2 {
			t.Fatalf("update: %v after %d attempts", err, attempts)
		}
		h := historyOf(t, st, ref)
		c, _ := changeAt(h[0], "state.a")
		if c.Old != `"racer"` || c.New != `"after-racer"` {
			t.Fatalf("the committed attempt's entry: %+v (all: %+v)", c, h)
		}
	}
	if h := historyOf(t, st, ref); len(h) != 2 || rec.len() != 2 {
		t.Fatalf("entries %d, Written %d, want 2 (one per committed write): %+v", len(h), rec.len(), h)
	}
}

// TestHistoryTrimsOldest: the history keeps MaxEntries entries, the newest.
func TestHistoryTrimsOldest(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 20*time.Second)
	ref := "ns/trim"
	m := store.HistoryMeta{Op: "set", MaxEntries: 3}
	if _, _, err := st.Put(store.WithHistory(ctx, m), ref, mustYAML(t, "state: {n: 0}"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, _, err := st.UpdatePaths(store.WithHistory(ctx, m), ref, "", []string{"state.n"}, setState("n", i)); err != nil {
			t.Fatal(err)
		}
	}
	h := historyOf(t, st, ref)
	var got []string
	for _, e := range h {
		got = append(got, e.Changes[0].New)
	}
	if strings.Join(got, ",") != "5,4,3" {
		t.Fatalf("kept %v, want the newest three 5,4,3", got)
	}
	if n, _ := srv.Client().LLen(ctx, st.HistoryKey(ref)).Result(); n != 3 {
		t.Fatalf("LLEN = %d", n)
	}
}

// TestHistoryExpiresWithTheContext: the history has the document's time to
// live (Put's TTL, kept by Update and UpdatePaths, moved by Expire), none when
// the document never expires, and goes with the document (expiry, Delete).
func TestHistoryExpiresWithTheContext(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 20*time.Second)
	m := store.HistoryMeta{Op: "set"}
	hk := func(ref string) time.Duration {
		d, err := srv.Client().PTTL(ctx, st.HistoryKey(ref)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	ref := "ns/ttl"
	if _, _, err := st.Put(store.WithHistory(ctx, m), ref, mustYAML(t, "state: {a: 1}"), store.PutOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if d := hk(ref); d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("history TTL after Put: %v", d)
	}
	if err := st.Expire(ctx, ref, 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, write := range []func() error{
		func() error { _, _, err := st.Update(store.WithHistory(ctx, m), ref, "", setState("a", 2)); return err },
		func() error {
			_, _, err := st.UpdatePaths(store.WithHistory(ctx, m), ref, "", []string{"state.a"}, setState("a", 3))
			return err
		},
	} {
		if err := write(); err != nil {
			t.Fatal(err)
		}
		if d := hk(ref); d <= 29*time.Minute || d > 30*time.Minute {
			t.Fatalf("history TTL after an update: %v (the document's is 30m)", d)
		}
	}
	if err := st.Expire(ctx, ref, 0); err != nil {
		t.Fatal(err)
	}
	if d := hk(ref); d != -1 {
		t.Fatalf("history TTL after Expire(0): %v, want none (-1)", d)
	}

	// A document without TTL: a history without TTL, even over an old one.
	ref2 := "ns/forever"
	_ = srv.Client().Set(ctx, st.HistoryKey(ref2), "x", time.Hour).Err()
	_ = srv.Client().Del(ctx, st.HistoryKey(ref2)).Err()
	if _, _, err := st.Put(store.WithHistory(ctx, m), ref2, mustYAML(t, "state: {a: 1}"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := hk(ref2); d != -1 {
		t.Fatalf("history TTL of a context that never expires: %v", d)
	}

	// Expiry takes the history along.
	ref3 := "ns/short"
	if _, _, err := st.Put(store.WithHistory(ctx, m), ref3, mustYAML(t, "state: {a: 1}"), store.PutOptions{TTL: 150 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := st.History(ctx, ref3, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("History of an expired context: %v", err)
	}
	if n, _ := srv.Client().Exists(ctx, st.HistoryKey(ref3)).Result(); n != 0 {
		t.Fatal("the history outlived its context")
	}

	// Delete takes it along.
	if ok, err := st.Delete(ctx, ref2); !ok || err != nil {
		t.Fatalf("Delete: %v %v", ok, err)
	}
	if n, _ := srv.Client().Exists(ctx, st.HistoryKey(ref2)).Result(); n != 0 {
		t.Fatal("Delete left the history")
	}
	if ok, err := st.Delete(ctx, ref2); ok || err != nil {
		t.Fatalf("Delete of a missing context: %v %v", ok, err)
	}
}

// TestHistoryConcurrentWriters: writers racing on one context each get one
// entry per applied op, none for their replays, and the entries tell the
// changes in the order they were applied.
func TestHistoryConcurrentWriters(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 60*time.Second)
	ref := "ns/race"
	m := store.HistoryMeta{Op: "set", MaxEntries: 1000}
	if _, _, err := st.Put(ctx, ref, mustYAML(t, "state: {n: 0}"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	const writers, ops = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*ops*2)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < ops; i++ {
				fn := func(d *document.Map) (bool, []byte, error) {
					v, _, _ := document.Lookup(d, "state.n")
					n, _ := v.(int)
					return true, nil, document.SetPath(d, "state.n", n+1)
				}
				key := fmt.Sprintf("w%d-%d", w, i)
				for r := 0; r < 2; r++ { // the second run replays
					var err error
					if w%2 == 0 {
						_, _, err = st.Update(store.WithHistory(ctx, m), ref, key, fn)
					} else {
						_, _, err = st.UpdatePaths(store.WithHistory(ctx, m), ref, key, []string{"state.n"}, fn)
					}
					if err != nil {
						errs <- err
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	h := historyOf(t, st, ref)
	if len(h) != writers*ops {
		t.Fatalf("%d entries, want %d (one per applied op)", len(h), writers*ops)
	}
	for i, e := range h {
		want := history.Change{Path: "state.n", Old: fmt.Sprint(writers*ops - i - 1), New: fmt.Sprint(writers*ops - i)}
		if len(e.Changes) != 1 || e.Changes[0] != want {
			t.Fatalf("entry %d: %+v, want %+v", i, e.Changes, want)
		}
	}
}

// TestHistoryRedactsAndTruncates: values (and paths) pass through Redact
// before they are cut at ValueBytes, and a cut value gives its full size;
// at most MaxHistoryChanges changes per entry, the rest counted.
func TestHistoryRedactsAndTruncates(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 20*time.Second)
	ref := "ns/redact"
	const secret = "hunter2-s3cret"
	m := store.HistoryMeta{Op: "set", ValueBytes: 64, Redact: func(s string) string { return strings.ReplaceAll(s, secret, "[REDACTED]") }}
	if _, _, err := st.Put(ctx, ref, mustYAML(t, "state: {a: 1}"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 40) + secret // the secret lies across the cut
	_, _, err := st.Update(store.WithHistory(ctx, m), ref, "", func(d *document.Map) (bool, []byte, error) {
		_ = document.SetPath(d, "state.token", secret)
		_ = document.SetPath(d, "state.long", long)
		return true, nil, document.SetPath(d, "state.key-"+secret, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	h := historyOf(t, st, ref)
	raw, _ := srv.Client().LIndex(ctx, st.HistoryKey(ref), 0).Result()
	if strings.Contains(raw, secret) || strings.Contains(raw, "s3cret") {
		t.Fatalf("a secret reached the history: %s", raw)
	}
	if c, ok := changeAt(h[0], "state.token"); !ok || c.New != `"[REDACTED]"` {
		t.Fatalf("token: %+v", h[0])
	}
	if _, ok := changeAt(h[0], "state.key-[REDACTED]"); !ok {
		t.Fatalf("a secret in a path is not redacted: %+v", h[0])
	}
	c, _ := changeAt(h[0], "state.long")
	full := len(`"` + strings.Repeat("é", 40) + `[REDACTED]"`)
	if len(c.New) > 64 || c.NewBytes != full || !strings.HasPrefix(c.New, `"éé`) || !strings.HasSuffix(c.New, "é") {
		t.Fatalf("long value: %q (%d bytes), NewBytes %d, want at most 64 bytes cut on a rune, full size %d", c.New, len(c.New), c.NewBytes, full)
	}

	// 60 keys at once: 50 changes listed, 10 counted.
	_, _, err = st.Update(store.WithHistory(ctx, m), ref, "", func(d *document.Map) (bool, []byte, error) {
		for i := 0; i < 60; i++ {
			_ = document.SetPath(d, fmt.Sprintf("state.many.k%02d", i), i)
		}
		return true, nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h = historyOf(t, st, ref)
	if len(h[0].Changes) != 1 || h[0].More != 0 {
		// state.many is new: one change holding the whole map, cut at 64 bytes
		t.Fatalf("new map: %+v", h[0])
	}
	_, _, err = st.Update(store.WithHistory(ctx, m), ref, "", func(d *document.Map) (bool, []byte, error) {
		for i := 0; i < 60; i++ {
			_ = document.SetPath(d, fmt.Sprintf("state.many.k%02d", i), -i-1)
		}
		return true, nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h = historyOf(t, st, ref)
	if len(h[0].Changes) != store.MaxHistoryChanges || h[0].More != 10 || h[0].Changes[0].Path != "state.many.k00" {
		t.Fatalf("60 changed leaves: %d listed, %d more (first %+v)", len(h[0].Changes), h[0].More, h[0].Changes[0])
	}
}

// TestContextsOfANamespace: the contexts of one namespace, most recently
// written first, only those that still exist; expired and deleted ones are
// pruned from the index.
func TestContextsOfANamespace(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 20*time.Second)
	put := func(ref string, ttl time.Duration) {
		t.Helper()
		if _, _, err := st.Put(ctx, ref, mustYAML(t, "state: {a: 1}"), store.PutOptions{TTL: ttl}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond) // distinct scores
	}
	put("team-a/one", 0)
	put("team-a/two", 0)
	put("team-a/short", 100*time.Millisecond)
	put("team-b/other", 0)
	put("team-a/three", 0)
	if _, _, err := st.UpdatePaths(store.WithHistory(ctx, store.HistoryMeta{Op: "set"}), "team-a/one", "", []string{"state.a"}, setState("a", 2)); err != nil {
		t.Fatal(err)
	}
	ids := func(ns string, limit int) string {
		t.Helper()
		cs, err := st.Contexts(ctx, ns, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i, c := range cs {
			if c.Updated.IsZero() || time.Since(c.Updated) > time.Minute || (i > 0 && c.Updated.After(cs[i-1].Updated)) {
				t.Fatalf("Updated of %s: %v", c.ID, c.Updated)
			}
			out = append(out, c.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids("team-a", 0); got != "one,three,short,two" {
		t.Fatalf("team-a: %s", got)
	}
	if got := ids("team-a", 2); got != "one,three" {
		t.Fatalf("team-a, limit 2: %s", got)
	}
	if got := ids("team-b", 0); got != "other" {
		t.Fatalf("team-b: %s", got)
	}
	if got := ids("team-c", 0); got != "" {
		t.Fatalf("team-c: %s", got)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := st.Delete(ctx, "team-a/three"); err != nil {
		t.Fatal(err)
	}
	// expired behind the store's back: found gone and pruned
	_ = srv.Client().ZAdd(ctx, st.ContextsKey("team-a"), redisZ(float64(time.Now().UnixMilli()), "ghost")).Err()
	if got := ids("team-a", 0); got != "one,two" {
		t.Fatalf("team-a after expiry and delete: %s", got)
	}
	if n, _ := srv.Client().ZCard(ctx, st.ContextsKey("team-a")).Result(); n != 2 {
		t.Fatalf("index of team-a holds %d members after pruning, want 2", n)
	}
	if _, err := st.Contexts(ctx, "Not_A_Namespace", 0); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("bad namespace: %v", err)
	}
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }
