package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

const partialSample = `
cicdContextDataId: p-1
channel: stage
pipelines: {build: {x: 1}}
state:
  a: {b: 1, c: [1, 2]}
  big: {k1: v1, k2: v2}
  l: [x]
  s: text
last: true
`

// setFn is the UpdateFunc of a list of document.SetPath assignments.
func setFn(sets ...[2]any) store.UpdateFunc {
	return func(d *document.Map) (bool, []byte, error) {
		for _, a := range sets {
			if err := document.SetPath(d, a[0].(string), a[1]); err != nil {
				return false, nil, err
			}
		}
		return true, []byte("ok"), nil
	}
}

// TestUpdatePathsMatchesUpdate: the same fn through UpdatePaths and Update leaves
// the same document, whatever the paths and the shape of the document.
func TestUpdatePathsMatchesUpdate(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 30*time.Second)
	deleteKey := func(path string) store.UpdateFunc {
		return func(d *document.Map) (bool, []byte, error) {
			segs := strings.Split(path, ".")
			m := d
			for _, sg := range segs[:len(segs)-1] {
				m, _ = m.GetMap(sg)
			}
			m.Delete(segs[len(segs)-1])
			return true, nil, nil
		}
	}
	cases := []struct {
		name  string
		doc   string
		paths []string
		fn    store.UpdateFunc
	}{
		{"nested state key", partialSample, []string{"state.a.b"}, setFn([2]any{"state.a.b", 2})},
		{"new state key", partialSample, []string{"state.new.x"}, setFn([2]any{"state.new.x", "y"})},
		{"several", partialSample, []string{"state.a.b", "state.new", "channel", "added", "state.s"},
			setFn([2]any{"state.a.b", 3}, [2]any{"state.new", "n"}, [2]any{"channel", "prod"}, [2]any{"added", 1}, [2]any{"state.s", "t2"})},
		{"list marker", partialSample, []string{"state.l[]"}, setFn([2]any{"state.l[]", "y,z"})},
		{"set marker", partialSample, []string{"state.l{}"}, setFn([2]any{"state.l{}", "x,w"})},
		{"marker error", partialSample, []string{"state.s[]"}, setFn([2]any{"state.s[]", "x"})},
		{"non-map on the way", partialSample, []string{"state.s.x"}, setFn([2]any{"state.s.x", "v"})},
		{"top-level nested", partialSample, []string{"pipelines.build.y"}, setFn([2]any{"pipelines.build.y", 2})},
		{"unchanged value", partialSample, []string{"state.s"}, setFn([2]any{"state.s", "text"})},
		{"no state yet", "a: 1", []string{"state.x.y"}, setFn([2]any{"state.x.y", 1})},
		{"no state yet, other key", "a: 1", []string{"b"}, setFn([2]any{"b", 1})},
		{"state not a map", "state: hello\nz: 1", []string{"state.x"}, setFn([2]any{"state.x", 1})},
		{"state null", "state: null\nz: 1", []string{"state.x"}, setFn([2]any{"state.x", 1})},
		{"state list to value", "state: [1]\nz: 1", []string{"state.x"}, setFn([2]any{"state.x", 1})},
		{"empty state", "state: {}\nz: 1", []string{"state.x"}, setFn([2]any{"state.x", 1})},
		{"whole state (full)", partialSample, []string{"state"}, setFn([2]any{"state", "gone"})},
		{"top marker (full)", partialSample, []string{"l[]"}, setFn([2]any{"l[]", "a"})},
		{"empty segment (full)", partialSample, []string{"state..x"}, setFn([2]any{"state..x", "a"})},
		{"unloaded key touched (fallback)", partialSample, []string{"state.a"}, setFn([2]any{"state.a.b", 9}, [2]any{"state.big.k3", "v3"})},
		{"unloaded top key touched (fallback)", partialSample, []string{"state.a"}, setFn([2]any{"channel", "x"})},
		{"state replaced (fallback)", partialSample, []string{"state.a"}, func(d *document.Map) (bool, []byte, error) {
			d.Set("state", document.NewMap())
			return true, nil, nil
		}},
		{"delete state key", partialSample, []string{"state.a"}, deleteKey("state.a")},
		{"delete top key", partialSample, []string{"channel"}, deleteKey("channel")},
		{"delete state", partialSample, []string{"state.a"}, deleteKey("state")},
		{"delete non-map state", "state: 1\nz: 2", []string{"state.a"}, deleteKey("state")},
		{"unchanged", partialSample, []string{"state.a"}, func(*document.Map) (bool, []byte, error) { return false, nil, nil }},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			full, part := fmt.Sprintf("ns/full-%d", i), fmt.Sprintf("ns/part-%d", i)
			for _, id := range []string{full, part} {
				if _, _, err := st.Put(ctx, id, mustYAML(t, c.doc), store.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			r1, rp1, err1 := st.Update(ctx, full, "", c.fn)
			r2, rp2, err2 := st.UpdatePaths(ctx, part, "", c.paths, c.fn)
			if fmt.Sprint(err1) != fmt.Sprint(err2) || string(r1) != string(r2) || rp1 != rp2 {
				t.Fatalf("Update: %q %v %v\nUpdatePaths: %q %v %v", r1, rp1, err1, r2, rp2, err2)
			}
			a, err := st.GetRaw(ctx, full)
			if err != nil {
				t.Fatal(err)
			}
			b, err := st.GetRaw(ctx, part)
			if err != nil {
				t.Fatal(err)
			}
			if string(a) != string(b) {
				t.Fatalf("Update gave\n%s\nUpdatePaths gave\n%s", a, b)
			}
			// The raw JSON is the encoding of what Get decodes.
			d, err := st.Get(ctx, part)
			if err != nil || mustJSON(t, d) != string(b) {
				t.Fatalf("Get = %s, %v; GetRaw = %s", mustJSON(t, d), err, b)
			}
			// And the hash holds exactly the fields of the document.
			h, err := srv.Client().HGetAll(ctx, st.DocKey(part)).Result()
			if err != nil {
				t.Fatal(err)
			}
			if want := hashOf(t, d); !reflect.DeepEqual(h, want) {
				t.Fatalf("hash\n%q\nwant\n%q", h, want)
			}
		})
	}
}

// hashOf is the hash layout of doc, written independently of the store.
func hashOf(t *testing.T, doc *document.Map) map[string]string {
	h := map[string]string{}
	order := document.NewMap()
	order.Set("v", 1)
	var keys []any
	doc.Range(func(k string, v any) bool {
		keys = append(keys, k)
		if sm, ok := v.(*document.Map); ok && k == "state" {
			var sk []any
			sm.Range(func(k string, v any) bool {
				sk = append(sk, k)
				h["s:"+k] = mustJSON(t, v)
				return true
			})
			if sk == nil {
				sk = []any{}
			}
			order.Set("state", sk)
			return true
		}
		h["t:"+k] = mustJSON(t, v)
		return true
	})
	if keys == nil {
		keys = []any{}
	}
	// "keys" goes before "state" in the order field.
	o := document.NewMap()
	o.Set("v", 1)
	o.Set("keys", keys)
	if sk, ok := order.Get("state"); ok {
		o.Set("state", sk)
	}
	h["order"] = mustJSON(t, o)
	return h
}

func TestUpdatePathsReadsAndWritesOnlyItsFields(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	rdb := srv.Client()
	if _, _, err := st.Put(ctx, "ns/p", mustYAML(t, partialSample), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// A field fn does not need holds JSON that is not even valid: UpdatePaths must
	// neither read nor rewrite it.
	key := st.DocKey("ns/p")
	if err := rdb.HSet(ctx, key, "s:big", "not json", "t:pipelines", "{ also not }").Err(); err != nil {
		t.Fatal(err)
	}
	var seen string
	res, replayed, err := st.UpdatePaths(ctx, "ns/p", "op-1", []string{"state.a.b", "channel", "state.missing.x"}, func(d *document.Map) (bool, []byte, error) {
		seen = mustJSON(t, d)
		if err := document.SetPath(d, "state.a.b", 5); err != nil {
			return false, nil, err
		}
		d.Set("newTop", "n")
		return true, []byte("r1"), nil
	})
	if err != nil || replayed || string(res) != "r1" {
		t.Fatalf("UpdatePaths: %q %v %v", res, replayed, err)
	}
	if want := `{"channel":"stage","state":{"a":{"b":1,"c":[1,2]}}}`; seen != want {
		t.Fatalf("fn saw %s\nwant %s", seen, want)
	}
	h, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if h["s:big"] != "not json" || h["t:pipelines"] != "{ also not }" || h["s:a"] != `{"b":5,"c":[1,2]}` || h["t:newTop"] != `"n"` ||
		h["order"] != `{"v":1,"keys":["cicdContextDataId","channel","pipelines","state","last","newTop"],"state":["a","big","l","s"]}` {
		t.Fatalf("hash = %q", h)
	}
	// The op record makes it exactly-once, without reading the document.
	res, replayed, err = st.UpdatePaths(ctx, "ns/p", "op-1", []string{"state.a.b"}, func(*document.Map) (bool, []byte, error) {
		t.Fatal("fn called on a replay")
		return false, nil, nil
	})
	if err != nil || !replayed || string(res) != "r1" {
		t.Fatalf("replay: %q %v %v", res, replayed, err)
	}
	// GetPaths reads only what it is asked.
	d, err := st.GetPaths(ctx, "ns/p", []string{"state.l", "last", "state.nope.x", "nope", "newTop"})
	if err != nil || mustJSON(t, d) != `{"state":{"l":["x"]},"last":true,"newTop":"n"}` {
		t.Fatalf("GetPaths = %s, %v", mustJSON(t, d), err)
	}
	// A whole read finds the broken fields.
	if _, err := st.Get(ctx, "ns/p"); !errors.Is(err, store.ErrMalformed) || !strings.Contains(err.Error(), "field") {
		t.Fatalf("Get: %v", err)
	}
	if _, err := st.GetPaths(ctx, "ns/p", []string{"state.big.k1"}); !errors.Is(err, store.ErrMalformed) || !strings.Contains(err.Error(), "s:big") {
		t.Fatalf("GetPaths of a broken field: %v", err)
	}
	// GetPaths of "state" is a whole read.
	if _, err := st.GetPaths(ctx, "ns/p", []string{"state"}); !errors.Is(err, store.ErrMalformed) {
		t.Fatalf("GetPaths(state): %v", err)
	}
}

func TestPartialNotFoundAndMalformed(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	rdb := srv.Client()
	fn := func(*document.Map) (bool, []byte, error) { t.Fatal("fn called"); return false, nil, nil }
	if _, err := st.GetPaths(ctx, "ns/missing", []string{"state.a"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPaths: %v", err)
	}
	if _, _, err := st.UpdatePaths(ctx, "ns/missing", "op", []string{"state.a"}, fn); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdatePaths: %v", err)
	}
	if _, ok := docOpRecord(t, st, "ns/missing", "op"); ok {
		t.Fatal("op recorded for a missing context")
	}
	if _, err := st.GetPaths(ctx, "ns/", []string{"a"}); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("empty id: %v", err)
	}
	for id, fields := range map[string][]any{
		"ns/no-order":    {"t:a", "1"},
		"ns/bad-order":   {"order", "[1]", "t:a", "1"},
		"ns/old-version": {"order", `{"v":0,"keys":["a"]}`, "t:a", "1"},
		"ns/missing":     {"order", `{"v":1,"keys":["a"]}`},
		"ns/bad-value":   {"order", `{"v":1,"keys":["a"]}`, "t:a", "{"},
		"ns/bad-state":   {"order", `{"v":1,"keys":["state"],"state":["a"]}`},
	} {
		if err := rdb.HSet(ctx, st.DocKey(id), fields...).Err(); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"Get":         func() error { _, err := st.Get(ctx, id); return err }(),
			"GetRaw":      func() error { _, err := st.GetRaw(ctx, id); return err }(),
			"GetPaths":    func() error { _, err := st.GetPaths(ctx, id, []string{"a", "state.a"}); return err }(),
			"Update":      func() error { _, _, err := st.Update(ctx, id, "", fn); return err }(),
			"UpdatePaths": func() error { _, _, err := st.UpdatePaths(ctx, id, "", []string{"a", "state.a"}, fn); return err }(),
		} {
			if name == "GetRaw" && id == "ns/bad-value" {
				continue // GetRaw does not decode values
			}
			if !errors.Is(err, store.ErrMalformed) || !strings.Contains(err.Error(), st.DocKey(id)) {
				t.Errorf("%s(%s): %v", name, id, err)
			}
		}
	}
}

// TestLegacyStringDocument: a document stored by an earlier version (one JSON
// string) is read as is and becomes a hash, keeping its TTL, on its next update.
func TestLegacyStringDocument(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	rdb := srv.Client()
	raw := `{"a":1,"state":{"x":"y","n":[1]},"z":null}`
	for _, id := range []string{"ns/l1", "ns/l2"} {
		if err := rdb.Set(ctx, st.DocKey(id), raw, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := st.GetRaw(ctx, "ns/l1"); err != nil || string(got) != raw {
		t.Fatalf("GetRaw = %s, %v", got, err)
	}
	if d, err := st.Get(ctx, "ns/l1"); err != nil || mustJSON(t, d) != raw {
		t.Fatalf("Get = %v, %v", d, err)
	}
	if d, err := st.GetPaths(ctx, "ns/l1", []string{"state.x"}); err != nil || mustJSON(t, d) != raw {
		t.Fatalf("GetPaths = %v, %v", d, err)
	}
	want := `{"a":1,"state":{"x":"y2","n":[1]},"z":null}`
	if _, _, err := st.Update(ctx, "ns/l1", "", setFn([2]any{"state.x", "y2"})); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.UpdatePaths(ctx, "ns/l2", "op-l2", []string{"state.x"}, setFn([2]any{"state.x", "y2"})); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ns/l1", "ns/l2"} {
		if typ, _ := rdb.Type(ctx, st.DocKey(id)).Result(); typ != "hash" {
			t.Fatalf("%s is a %s after the update", id, typ)
		}
		if got, err := st.GetRaw(ctx, id); err != nil || string(got) != want {
			t.Fatalf("%s: GetRaw = %s, %v", id, got, err)
		}
		if ttl, err := st.TTL(ctx, id); err != nil || ttl < 59*time.Minute {
			t.Fatalf("%s: TTL = %v, %v", id, ttl, err)
		}
	}
	// An unchanged legacy document stays as it is.
	if err := rdb.Set(ctx, st.DocKey("ns/l3"), raw, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Update(ctx, "ns/l3", "op-l3", func(*document.Map) (bool, []byte, error) { return false, nil, nil }); err != nil {
		t.Fatal(err)
	}
	if typ, _ := rdb.Type(ctx, st.DocKey("ns/l3")).Result(); typ != "string" {
		t.Fatalf("l3 is a %s", typ)
	}
}

func TestUpdatePathsKeepsTTL(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	if _, _, err := st.Put(ctx, "ns/ttl", mustYAML(t, partialSample), store.PutOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for i, path := range []string{"state.a.b", "state.new", "newTop", "state"} {
		if _, _, err := st.UpdatePaths(ctx, "ns/ttl", "", []string{path}, setFn([2]any{path, i})); err != nil {
			t.Fatal(err)
		}
		if ttl, err := st.TTL(ctx, "ns/ttl"); err != nil || ttl <= 59*time.Minute {
			t.Fatalf("TTL after setting %s = %v, %v", path, ttl, err)
		}
	}
	if d, _ := st.Get(ctx, "ns/ttl"); mustJSON(t, d) != `{"cicdContextDataId":"p-1","channel":"stage","pipelines":{"build":{"x":1}},"state":3,"last":true,"newTop":2}` {
		t.Fatalf("doc = %s", mustJSON(t, d))
	}
}

// TestUpdatePathsConcurrentWriters: 50 writers through UpdatePaths, on two state
// keys and a top-level key, lose nothing, alongside full Updates.
func TestUpdatePathsConcurrentWriters(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 2*time.Minute)
	if _, _, err := st.Put(ctx, "ns/c", mustYAML(t, sample), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := fmt.Sprintf("v%02d", i)
			var err error
			switch i % 4 {
			case 0:
				_, _, err = st.Update(ctx, "ns/c", "", appendItem(v))
			case 1:
				_, _, err = st.UpdatePaths(ctx, "ns/c", "", []string{"state.items"}, appendItem(v))
			case 2:
				_, _, err = st.UpdatePaths(ctx, "ns/c", "", []string{"state.other[]"}, setFn([2]any{"state.other[]", v}))
			case 3:
				_, _, err = st.UpdatePaths(ctx, "ns/c", "", []string{"top[]"}, setFn([2]any{"top[]", v})) // full
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	d, err := st.Get(ctx, "ns/c")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, p := range []string{"state.items", "state.other", "top"} {
		v, _, _ := document.Lookup(d, p)
		l, _ := v.([]any)
		for _, e := range l {
			seen[e.(string)]++
		}
	}
	for i := 0; i < n; i++ {
		if c := seen[fmt.Sprintf("v%02d", i)]; c != 1 {
			t.Errorf("v%02d found %d times", i, c)
		}
	}
	// The order of state: the sample's keys, then the first writer's key.
	s, _ := d.GetMap("state")
	if k := strings.Join(s.Keys(), ","); k != "items,name,other" {
		t.Errorf("state keys = %s", k)
	}
}

// TestUpdatePathsExactlyOnceConcurrent: duplicates of one op apply once.
func TestUpdatePathsExactlyOnceConcurrent(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, time.Minute)
	if _, _, err := st.Put(ctx, "ns/c", mustYAML(t, sample), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	var applied atomic.Int32
	results := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, replayed, err := st.UpdatePaths(ctx, "ns/c", "run/step", []string{"state.items"}, appendItem("b"))
			if err != nil {
				t.Error(err)
				return
			}
			if !replayed {
				applied.Add(1)
			}
			results[i] = string(r)
		}()
	}
	wg.Wait()
	if applied.Load() != 1 {
		t.Fatalf("applied %d times", applied.Load())
	}
	for _, r := range results {
		if r != "appended b at 0" {
			t.Fatalf("results = %q", results)
		}
	}
	if got := items(t, st, "ns/c"); len(got) != 1 {
		t.Fatalf("items = %v", got)
	}
}

// TestReaderNeverSeesPartialWrite: two state keys written together by UpdatePaths
// are always seen together by Get, GetRaw and GetPaths.
func TestReaderNeverSeesPartialWrite(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, time.Minute)
	if _, _, err := st.Put(ctx, "ns/r", mustYAML(t, "state: {a: 0, pad: x, b: 0}"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	check := func(d *document.Map) error {
		a, _, _ := document.Lookup(d, "state.a")
		b, _, _ := document.Lookup(d, "state.b")
		if a != b {
			return fmt.Errorf("state.a = %v, state.b = %v", a, b)
		}
		return nil
	}
	done := make(chan struct{})
	readErr := make(chan error, 1)
	var reads atomic.Int32
	go func() {
		defer close(readErr)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			var d *document.Map
			var err error
			switch i % 3 {
			case 0:
				d, err = st.Get(ctx, "ns/r")
			case 1:
				var raw []byte
				if raw, err = st.GetRaw(ctx, "ns/r"); err == nil {
					var v any
					v, err = document.ParseJSON(raw)
					d, _ = v.(*document.Map)
				}
			case 2:
				d, err = st.GetPaths(ctx, "ns/r", []string{"state.a", "state.b"})
			}
			if err == nil {
				err = check(d)
			}
			if err != nil {
				readErr <- err
				return
			}
			reads.Add(1)
		}
	}()
	for i := 1; i <= 200; i++ {
		if _, _, err := st.UpdatePaths(ctx, "ns/r", "", []string{"state.a", "state.b"}, setFn([2]any{"state.a", i}, [2]any{"state.b", i})); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	if reads.Load() < 10 {
		t.Fatalf("only %d reads", reads.Load())
	}
}

func TestUpdatePathsFnError(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	if _, _, err := st.Put(ctx, "ns/e", mustYAML(t, partialSample), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	before, _ := st.GetRaw(ctx, "ns/e")
	boom := errors.New("boom")
	_, _, err := st.UpdatePaths(ctx, "ns/e", "op", []string{"state.a"}, func(d *document.Map) (bool, []byte, error) {
		d.Set("junk", 1)
		return true, nil, boom
	})
	if err != boom {
		t.Fatalf("err = %v", err)
	}
	if after, _ := st.GetRaw(ctx, "ns/e"); string(after) != string(before) {
		t.Fatalf("written despite fn error:\n%s\n%s", before, after)
	}
	if _, ok := docOpRecord(t, st, "ns/e", "op"); ok {
		t.Fatal("op recorded despite fn error")
	}
	// Cancelled context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := st.UpdatePaths(cctx, "ns/e", "", []string{"state.a"}, setFn([2]any{"state.a", 1})); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
