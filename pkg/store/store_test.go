package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

const sample = `
cicdContextDataId: app-1.0
zeta: 1
alpha:
  z: [3, 1, 2]
  a: {y: true, b: null, m: 1.5}
state:
  items: []
  name: "héllo \"x\""
`

func TestPutGetRoundTripKeepsOrder(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	doc := mustYAML(t, sample)
	res, replayed, err := st.Put(ctx, "ns/app-1.0", doc, store.PutOptions{})
	if err != nil || res != nil || replayed {
		t.Fatalf("Put: %q %v %v", res, replayed, err)
	}
	got, err := st.Get(ctx, "ns/app-1.0")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, got), mustJSON(t, doc); a != b {
		t.Fatalf("round trip:\n got %s\nwant %s", a, b)
	}
	// Stored as compact JSON in key order.
	raw, err := st.GetRaw(ctx, "ns/app-1.0")
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != mustJSON(t, doc) || !strings.HasPrefix(string(raw), `{"cicdContextDataId":"app-1.0","zeta":1,"alpha":{"z":[3,1,2]`) {
		t.Fatalf("raw = %s", raw)
	}
	// Stored as a hash: one field per top-level key, one per key of state, the order.
	direct, err := srv.Client().HGetAll(ctx, st.DocKey("ns/app-1.0")).Result()
	wantHash := map[string]string{
		"order":               `{"v":1,"keys":["cicdContextDataId","zeta","alpha","state"],"state":["items","name"]}`,
		"t:cicdContextDataId": `"app-1.0"`,
		"t:zeta":              `1`,
		"t:alpha":             `{"z":[3,1,2],"a":{"y":true,"b":null,"m":1.5}}`,
		"s:items":             `[]`,
		"s:name":              `"héllo \"x\""`,
	}
	if err != nil || !reflect.DeepEqual(direct, wantHash) {
		t.Fatalf("key %s = %q, %v\nwant %q", st.DocKey("ns/app-1.0"), direct, err, wantHash)
	}
	if !strings.HasPrefix(st.DocKey("ns/x"), "t") || !strings.HasSuffix(st.DocKey("ns/x"), ":TestPutGetRoundTripKeepsOrder:{ns/x}:ctx") {
		t.Fatalf("DocKey = %s", st.DocKey("ns/x"))
	}

	// Update keeps order and appends new keys last.
	_, _, err = st.Update(ctx, "ns/app-1.0", "", func(d *document.Map) (bool, []byte, error) {
		s, _ := d.GetMap("state")
		s.Set("name", "changed")
		s.Set("new", []any{"x"})
		d.Set("last", 2)
		return true, nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err = st.Get(ctx, "ns/app-1.0")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cicdContextDataId":"app-1.0","zeta":1,"alpha":{"z":[3,1,2],"a":{"y":true,"b":null,"m":1.5}},` +
		`"state":{"items":[],"name":"changed","new":["x"]},"last":2}`
	if s := mustJSON(t, got); s != want {
		t.Fatalf("after update:\n got %s\nwant %s", s, want)
	}
}

func TestDefaultKeyPrefix(t *testing.T) {
	o := opts(t, srv)
	o.KeyPrefix = ""
	st := newStore(t, o)
	if k := st.DocKey("ns/a"); k != "cicdstatemgr:{ns/a}:ctx" {
		t.Fatalf("DocKey = %s", k)
	}
	if k := st.DocOpKey("ns/a", "r/s"); k != "cicdstatemgr:{ns/a}:op:r/s" {
		t.Fatalf("DocOpKey = %s", k)
	}
	if k := st.OpKey("b"); k != "cicdstatemgr:op:b" {
		t.Fatalf("OpKey = %s", k)
	}
	if k := st.ClaimKey("c"); k != "cicdstatemgr:claim:c" {
		t.Fatalf("ClaimKey = %s", k)
	}
	if k := st.LegacyDocKey("a"); k != "cicdstatemgr:ctx:a" {
		t.Fatalf("LegacyDocKey = %s", k)
	}
}

func TestNotFound(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	// The message names the ref only: no Redis key, no address (a missing context
	// and one the caller may not see read the same).
	const want = "cicd context not found: ns/missing"
	_, err := st.Get(ctx, "ns/missing")
	if !errors.Is(err, store.ErrNotFound) || err.Error() != want {
		t.Fatalf("Get: %v", err)
	}
	if errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("not found is not unavailable: %v", err)
	}
	called := false
	_, _, err = st.Update(ctx, "ns/missing", "op1", func(*document.Map) (bool, []byte, error) {
		called = true
		return true, nil, nil
	})
	if !errors.Is(err, store.ErrNotFound) || err.Error() != want || called {
		t.Fatalf("Update: %v (fn called: %v)", err, called)
	}
	if _, ok := docOpRecord(t, st, "ns/missing", "op1"); ok {
		t.Fatal("op record written for a missing context")
	}
	if _, err := st.TTL(ctx, "ns/missing"); !errors.Is(err, store.ErrNotFound) || err.Error() != want {
		t.Fatalf("TTL: %v", err)
	}
	for _, ttl := range []time.Duration{0, time.Minute} {
		if err := st.Expire(ctx, "ns/missing", ttl); !errors.Is(err, store.ErrNotFound) || err.Error() != want {
			t.Fatalf("Expire(%v): %v", ttl, err)
		}
	}
	for name, err := range map[string]error{
		"GetRaw":   func() error { _, err := st.GetRaw(ctx, "ns/missing"); return err }(),
		"GetPaths": func() error { _, err := st.GetPaths(ctx, "ns/missing", []string{"state.a"}); return err }(),
		"UpdatePaths": func() error {
			_, _, err := st.UpdatePaths(ctx, "ns/missing", "", []string{"state.a"}, appendItem("x"))
			return err
		}(),
	} {
		if !errors.Is(err, store.ErrNotFound) || err.Error() != want {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A context of another namespace is not found either.
	if _, _, err := st.Put(ctx, "other/missing", mustYAML(t, "a: 1"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "ns/missing"); !errors.Is(err, store.ErrNotFound) || err.Error() != want {
		t.Fatalf("Get of another namespace's context: %v", err)
	}
}

func TestIDs(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	doc := mustYAML(t, "a: 1")
	ns63 := "n" + strings.Repeat("s", 61) + "9"
	// Each bad ref is refused by every method that takes one, with this in its message.
	bad := []struct{ ref, msg string }{
		{"", "has no namespace"},
		{"no-namespace", `cicd context "no-namespace" has no namespace (want namespace/id)`},
		{"/x", `namespace "" must be 1 to 63 characters`},
		{"NS/x", "must be lower-case letters, digits and '-'"},
		{"nS/x", "must be lower-case letters, digits and '-'"},
		{"-ns/x", "must be lower-case letters, digits and '-'"},
		{"ns-/x", "must be lower-case letters, digits and '-'"},
		{"n_s/x", "must be lower-case letters, digits and '-'"},
		{"n.s/x", "must be lower-case letters, digits and '-'"},
		{"nß/x", "must be lower-case letters, digits and '-'"},
		{ns63 + "x/x", "must be 1 to 63 characters"},
		{"ns/", "empty cicd context id"},
		{"ns/a/b", `cicd context id "a/b" contains '/'`},
		{"ns//", `cicd context id "/" contains '/'`},
		{"ns/" + strings.Repeat("x", 254), "cicd context id is 254 bytes long, at most 253 allowed"},
	}
	for _, b := range bad {
		for name, err := range map[string]error{
			"Put":      func() error { _, _, err := st.Put(ctx, b.ref, doc, store.PutOptions{}); return err }(),
			"Get":      func() error { _, err := st.Get(ctx, b.ref); return err }(),
			"GetRaw":   func() error { _, err := st.GetRaw(ctx, b.ref); return err }(),
			"GetPaths": func() error { _, err := st.GetPaths(ctx, b.ref, []string{"a"}); return err }(),
			"Update":   func() error { _, _, err := st.Update(ctx, b.ref, "", nil); return err }(),
			"UpdatePaths": func() error {
				_, _, err := st.UpdatePaths(ctx, b.ref, "op", []string{"a"}, nil)
				return err
			}(),
			"Exists": func() error { _, err := st.Exists(ctx, b.ref); return err }(),
			"Delete": func() error { _, err := st.Delete(ctx, b.ref); return err }(),
			"TTL":    func() error { _, err := st.TTL(ctx, b.ref); return err }(),
			"Expire": st.Expire(ctx, b.ref, time.Minute),
			"SplitRef": func() error {
				ns, id, err := store.SplitRef(b.ref)
				if ns != "" || id != "" {
					t.Errorf("SplitRef(%q) = %q, %q", b.ref, ns, id)
				}
				return err
			}(),
		} {
			if !errors.Is(err, store.ErrInvalidKey) || !strings.Contains(err.Error(), b.msg) {
				t.Errorf("%s(%.40q): %v, want ErrInvalidKey with %q", name, b.ref, err, b.msg)
			}
		}
	}
	// The checks one by one.
	for ns, ok := range map[string]bool{"a": true, "a-b": true, "0": true, "9a-0": true, ns63: true,
		"": false, "-a": false, "a-": false, "A": false, ns63 + "x": false, "a/b": false} {
		if err := store.CheckNamespace(ns); (err == nil) != ok || (err != nil && !errors.Is(err, store.ErrInvalidKey)) {
			t.Errorf("CheckNamespace(%q) = %v", ns, err)
		}
	}
	for id, ok := range map[string]bool{"a": true, "{%}": true, strings.Repeat("y", 253): true,
		"": false, "a/b": false, strings.Repeat("y", 254): false} {
		if err := store.CheckID(id); (err == nil) != ok || (err != nil && !errors.Is(err, store.ErrInvalidKey)) {
			t.Errorf("CheckID(%.20q) = %v", id, err)
		}
	}
	// Any bytes but '/' are fine in an id, up to 253 of them, in a namespace of up to 63.
	for _, id := range []string{strings.Repeat("y", 253), "a b:c*?[x]\x00\n\xff", "ünïçødé", "{x}", "%7D", "}:op:y"} {
		for _, ns := range []string{"ns", "a", ns63} {
			ref := store.Ref(ns, id)
			if gotNS, gotID, err := store.SplitRef(ref); gotNS != ns || gotID != id || err != nil {
				t.Fatalf("SplitRef(%q) = %q, %q, %v", ref, gotNS, gotID, err)
			}
			if _, _, err := st.Put(ctx, ref, doc, store.PutOptions{}); err != nil {
				t.Fatalf("Put(%q): %v", ref, err)
			}
			got, err := st.Get(ctx, ref)
			if err != nil || mustJSON(t, got) != `{"a":1}` {
				t.Fatalf("Get(%q) = %v, %v", ref, got, err)
			}
		}
	}
	if _, _, err := st.Update(ctx, "ns/x", strings.Repeat("o", 1025), nil); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("long op key: %v", err)
	}
	if _, err := st.Claim(ctx, "", time.Second); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("empty claim key: %v", err)
	}
}

// appendItem is an UpdateFunc appending v to state.items.
func appendItem(v string) store.UpdateFunc {
	return func(d *document.Map) (bool, []byte, error) {
		s, ok := d.GetMap("state")
		if !ok {
			return false, nil, errors.New("no state")
		}
		items, _ := s.Get("items")
		list, _ := items.([]any)
		s.Set("items", append(list, v))
		return true, []byte(fmt.Sprintf("appended %s at %d", v, len(list))), nil
	}
}

func items(t testing.TB, st *store.Store, id string) []any {
	t.Helper()
	d, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := d.GetMap("state")
	v, _ := s.Get("items")
	l, _ := v.([]any)
	return l
}

func TestUpdateConcurrentWritersLoseNothing(t *testing.T) {
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
			if _, _, err := st.Update(ctx, "ns/c", "", appendItem(fmt.Sprintf("v%02d", i))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := items(t, st, "ns/c")
	if len(got) != n {
		t.Fatalf("%d items, want %d: %v", len(got), n, got)
	}
	seen := map[any]bool{}
	for _, v := range got {
		seen[v] = true
	}
	for i := 0; i < n; i++ {
		if !seen[fmt.Sprintf("v%02d", i)] {
			t.Errorf("v%02d lost", i)
		}
	}
}

func TestUpdateExactlyOnce(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 30*time.Second)
	if _, _, err := st.Put(ctx, "ns/c", mustYAML(t, sample), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r1, replayed, err := st.Update(ctx, "ns/c", "run-1/step-1", appendItem("a"))
	if err != nil || replayed || string(r1) != "appended a at 0" {
		t.Fatalf("first: %q %v %v", r1, replayed, err)
	}
	calls := 0
	fn := appendItem("a")
	r2, replayed, err := st.Update(ctx, "ns/c", "run-1/step-1", func(d *document.Map) (bool, []byte, error) {
		calls++
		return fn(d)
	})
	if err != nil || !replayed || string(r2) != string(r1) || calls != 0 {
		t.Fatalf("second: %q %v %v (fn calls %d)", r2, replayed, err, calls)
	}
	if got := items(t, st, "ns/c"); len(got) != 1 {
		t.Fatalf("items = %v", got)
	}
	// The record lives beside the document, not among the standalone records.
	if res, ok := docOpRecord(t, st, "ns/c", "run-1/step-1"); !ok || string(res) != string(r1) {
		t.Fatalf("op record = %q %v", res, ok)
	}
	if _, ok, err := st.OpResult(ctx, "run-1/step-1"); ok || err != nil {
		t.Fatalf("standalone OpResult of a document op = %v %v", ok, err)
	}
	ttl, err := srv.Client().TTL(ctx, st.DocOpKey("ns/c", "run-1/step-1")).Result()
	if err != nil || ttl <= 6*24*time.Hour || ttl > store.DefaultDoneTTL {
		t.Fatalf("op record TTL = %v, %v", ttl, err)
	}

	// Concurrent duplicates of one op apply once, and all see the same result.
	const n = 20
	var wg sync.WaitGroup
	var applied atomic.Int32
	results := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, replayed, err := st.Update(ctx, "ns/c", "run-1/step-2", appendItem("b"))
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
		if r != "appended b at 1" {
			t.Fatalf("results = %q", results)
		}
	}
	if got := items(t, st, "ns/c"); len(got) != 2 {
		t.Fatalf("items = %v", got)
	}

	// An unchanged document still records the op (and writes no document).
	r3, replayed, err := st.Update(ctx, "ns/c", "run-1/noop", func(*document.Map) (bool, []byte, error) {
		return false, nil, nil
	})
	if err != nil || replayed || r3 != nil {
		t.Fatalf("noop: %q %v %v", r3, replayed, err)
	}
	if r3, ok := docOpRecord(t, st, "ns/c", "run-1/noop"); !ok || len(r3) != 0 {
		t.Fatalf("noop record: %q %v", r3, ok)
	}
	if _, replayed, _ := st.Update(ctx, "ns/c", "run-1/noop", appendItem("z")); !replayed {
		t.Fatal("noop op applied again")
	}
}

func TestUpdateFuncError(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	if _, _, err := st.Put(ctx, "ns/c", mustYAML(t, sample), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, _, err := st.Update(ctx, "ns/c", "op", func(d *document.Map) (bool, []byte, error) {
		d.Set("junk", 1)
		return true, nil, boom
	})
	if err != boom {
		t.Fatalf("err = %v, want boom as is", err)
	}
	d, _ := st.Get(ctx, "ns/c")
	if d.Has("junk") {
		t.Fatal("written despite fn error")
	}
	if _, ok := docOpRecord(t, st, "ns/c", "op"); ok {
		t.Fatal("op recorded despite fn error")
	}
}

func TestPutExactlyOnce(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	r, replayed, err := st.Put(ctx, "ns/p", mustYAML(t, "v: 1"), store.PutOptions{OpKey: "init/1", Result: []byte("r1")})
	if err != nil || replayed || string(r) != "r1" {
		t.Fatalf("first: %q %v %v", r, replayed, err)
	}
	r, replayed, err = st.Put(ctx, "ns/p", mustYAML(t, "v: 2"), store.PutOptions{OpKey: "init/1", Result: []byte("r2")})
	if err != nil || !replayed || string(r) != "r1" {
		t.Fatalf("second: %q %v %v", r, replayed, err)
	}
	if d, _ := st.Get(ctx, "ns/p"); mustJSON(t, d) != `{"v":1}` {
		t.Fatalf("doc = %s", mustJSON(t, d))
	}
	if r, ok := docOpRecord(t, st, "ns/p", "init/1"); !ok || string(r) != "r1" {
		t.Fatalf("op record = %q %v", r, ok)
	}
	// An op key is scoped to its context: the same op key on another context applies.
	if r, replayed, err := st.Put(ctx, "ns/p2", mustYAML(t, "v: 9"), store.PutOptions{OpKey: "init/1", Result: []byte("r9")}); err != nil || replayed || string(r) != "r9" {
		t.Fatalf("same op key, other context: %q %v %v", r, replayed, err)
	}
	// Another op overwrites.
	if _, _, err := st.Put(ctx, "ns/p", mustYAML(t, "v: 3"), store.PutOptions{OpKey: "init/2"}); err != nil {
		t.Fatal(err)
	}
	if d, _ := st.Get(ctx, "ns/p"); mustJSON(t, d) != `{"v":3}` {
		t.Fatalf("doc = %s", mustJSON(t, d))
	}
}

func TestTTLKeptByUpdate(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	if _, _, err := st.Put(ctx, "ns/ttl", mustYAML(t, sample), store.PutOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ttl, err := st.TTL(ctx, "ns/ttl")
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL after Put = %v, %v", ttl, err)
	}
	for i := 0; i < 3; i++ {
		if _, _, err := st.Update(ctx, "ns/ttl", fmt.Sprint("op", i), appendItem("x")); err != nil {
			t.Fatal(err)
		}
	}
	ttl, err = st.TTL(ctx, "ns/ttl")
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL after Update = %v, %v", ttl, err)
	}
	// A Put without TTL makes it permanent; Expire sets and clears TTLs.
	if _, _, err := st.Put(ctx, "ns/ttl", mustYAML(t, sample), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if ttl, err := st.TTL(ctx, "ns/ttl"); err != nil || ttl != 0 {
		t.Fatalf("TTL after plain Put = %v, %v", ttl, err)
	}
	if err := st.Expire(ctx, "ns/ttl", time.Minute); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := st.TTL(ctx, "ns/ttl"); ttl <= 59*time.Second {
		t.Fatalf("TTL after Expire = %v", ttl)
	}
	if err := st.Expire(ctx, "ns/ttl", 0); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := st.TTL(ctx, "ns/ttl"); ttl != 0 {
		t.Fatalf("TTL after Expire(0) = %v", ttl)
	}
	if err := st.Expire(ctx, "ns/ttl", 0); err != nil {
		t.Fatalf("Expire(0) on a permanent context: %v", err)
	}
	if _, _, err := st.Put(ctx, "ns/ttl", mustYAML(t, sample), store.PutOptions{TTL: -time.Second}); err == nil {
		t.Fatal("negative TTL accepted")
	}
}

func TestExistsDelete(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	if ok, err := st.Exists(ctx, "ns/e"); ok || err != nil {
		t.Fatalf("Exists before: %v %v", ok, err)
	}
	if _, _, err := st.Put(ctx, "ns/e", mustYAML(t, "a: 1"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Exists(ctx, "ns/e"); !ok || err != nil {
		t.Fatalf("Exists after: %v %v", ok, err)
	}
	if ok, err := st.Delete(ctx, "ns/e"); !ok || err != nil {
		t.Fatalf("Delete: %v %v", ok, err)
	}
	if ok, err := st.Delete(ctx, "ns/e"); ok || err != nil {
		t.Fatalf("second Delete: %v %v", ok, err)
	}
	if _, err := st.Get(ctx, "ns/e"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
}

func TestClaimAndOpRecords(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	ok, err := st.Claim(ctx, "notify/run-1/0", time.Minute)
	if !ok || err != nil {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	if ok, err := st.Claim(ctx, "notify/run-1/0", time.Minute); ok || err != nil {
		t.Fatalf("second claim: %v %v", ok, err)
	}
	if err := st.Release(ctx, "notify/run-1/0"); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Claim(ctx, "notify/run-1/0", 0); !ok || err != nil {
		t.Fatalf("claim after release: %v %v", ok, err)
	}
	if ttl, _ := srv.Client().TTL(ctx, st.ClaimKey("notify/run-1/0")).Result(); ttl <= 6*24*time.Hour {
		t.Fatalf("claim with ttl 0 has TTL %v, want DoneTTL", ttl)
	}
	// Owned claims are re-entrant for their owner.
	if ok, err := st.ClaimAs(ctx, "trigger/1", "run-a", time.Minute); !ok || err != nil {
		t.Fatalf("ClaimAs: %v %v", ok, err)
	}
	if ok, err := st.ClaimAs(ctx, "trigger/1", "run-a", time.Minute); !ok || err != nil {
		t.Fatalf("ClaimAs again by the owner: %v %v", ok, err)
	}
	if ok, err := st.ClaimAs(ctx, "trigger/1", "run-b", time.Minute); ok || err != nil {
		t.Fatalf("ClaimAs by another: %v %v", ok, err)
	}
	if owner, ok, err := st.ClaimOwner(ctx, "trigger/1"); owner != "run-a" || !ok || err != nil {
		t.Fatalf("ClaimOwner: %q %v %v", owner, ok, err)
	}
	if ok, err := st.ReleaseAs(ctx, "trigger/1", "run-b"); ok || err != nil {
		t.Fatalf("ReleaseAs by another: %v %v", ok, err)
	}
	if ok, err := st.ReleaseAs(ctx, "trigger/1", "run-a"); !ok || err != nil {
		t.Fatalf("ReleaseAs by the owner: %v %v", ok, err)
	}
	if _, ok, _ := st.ClaimOwner(ctx, "trigger/1"); ok {
		t.Fatal("claim still held")
	}
	// Concurrent claims: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := st.Claim(ctx, "race", time.Minute); err != nil {
				t.Error(err)
			} else if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d winners", wins.Load())
	}
	// Op records.
	if _, ok, err := st.OpResult(ctx, "x"); ok || err != nil {
		t.Fatalf("OpResult of nothing: %v %v", ok, err)
	}
	if err := st.SetOpResult(ctx, "x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	cur, stored, err := st.SetOpResultNX(ctx, "x", []byte("2"))
	if err != nil || stored || string(cur) != "1" {
		t.Fatalf("SetOpResultNX existing: %q %v %v", cur, stored, err)
	}
	cur, stored, err = st.SetOpResultNX(ctx, "y", []byte("3"))
	if err != nil || !stored || string(cur) != "3" {
		t.Fatalf("SetOpResultNX new: %q %v %v", cur, stored, err)
	}
	if err := st.DeleteOpResult(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.OpResult(ctx, "x"); ok {
		t.Fatal("op record not deleted")
	}
}

func TestMalformedStoredData(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 10*time.Second)
	rdb := srv.Client()
	for id, raw := range map[string]string{"ns/bad": "not json {", "ns/list": `[1,2]`, "ns/trailing": `{"a":1} x`} {
		if err := rdb.Set(ctx, st.DocKey(id), raw, 0).Err(); err != nil {
			t.Fatal(err)
		}
		_, err := st.Get(ctx, id)
		if !errors.Is(err, store.ErrMalformed) || !strings.Contains(err.Error(), st.DocKey(id)) {
			t.Errorf("Get(%s): %v", id, err)
		}
		called := false
		_, _, err = st.Update(ctx, id, "", func(*document.Map) (bool, []byte, error) {
			called = true
			return false, nil, nil
		})
		if !errors.Is(err, store.ErrMalformed) || called {
			t.Errorf("Update(%s): %v (fn called %v)", id, err, called)
		}
	}
}

func TestContextCancelled(t *testing.T) {
	st := shared(t)
	if _, _, err := st.Put(context.Background(), "ns/c", mustYAML(t, sample), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := st.Update(ctx, "ns/c", "", appendItem("x"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // a closed port: connection refused
	st := newStore(t, store.Options{Addr: addr, Username: "u", Password: "sekret-pw"})
	ctx := testCtx(t, time.Minute)
	calls := map[string]func() error{
		"Ping": func() error { return st.Ping(ctx) },
		"Get":  func() error { _, err := st.Get(ctx, "ns/x"); return err },
		"Put": func() error {
			_, _, err := st.Put(ctx, "ns/x", document.NewMap(), store.PutOptions{OpKey: "o"})
			return err
		},
		"Update": func() error {
			_, _, err := st.Update(ctx, "ns/x", "o", appendItem("x"))
			return err
		},
		"Claim": func() error { _, err := st.Claim(ctx, "x", time.Second); return err },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s took %v", name, d)
		}
		if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrAuth) {
			t.Errorf("%s: %v, want ErrUnavailable", name, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, addr) || !strings.Contains(msg, "is Redis running?") || strings.Contains(msg, "sekret-pw") {
			t.Errorf("%s message: %s", name, msg)
		}
	}
}

func TestStoppedAndRestartedRedis(t *testing.T) {
	s := redistest.Start(t, redistest.WithDefaultUserDisabled())
	o := opts(t, s)
	o.ReadTimeout = 500 * time.Millisecond
	o.WriteTimeout = 500 * time.Millisecond
	st := newStore(t, o)
	ctx := testCtx(t, time.Minute)
	if _, _, err := st.Put(ctx, "ns/r", mustYAML(t, sample), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// Hung server (SIGSTOP): times out as unavailable.
	s.Pause()
	start := time.Now()
	_, err := st.Get(ctx, "ns/r")
	s.Resume()
	if !errors.Is(err, store.ErrUnavailable) || time.Since(start) > 5*time.Second {
		t.Fatalf("paused: %v after %v", err, time.Since(start))
	}
	if _, err := st.Get(ctx, "ns/r"); err != nil {
		t.Fatalf("after resume: %v", err)
	}
	// Stopped server: unavailable, fast.
	s.Stop()
	start = time.Now()
	_, _, err = st.Update(ctx, "ns/r", "op", appendItem("x"))
	if !errors.Is(err, store.ErrUnavailable) || time.Since(start) > 5*time.Second {
		t.Fatalf("stopped: %v after %v", err, time.Since(start))
	}
	// Back again, with the data: the same store recovers.
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for i := 0; i < 50; i++ {
		if _, _, lastErr = st.Update(ctx, "ns/r", "op", appendItem("x")); lastErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("after restart: %v", lastErr)
	}
	if got := items(t, st, "ns/r"); len(got) != 1 {
		t.Fatalf("items = %v", got)
	}
}

func TestWrongPassword(t *testing.T) {
	o := opts(t, srv)
	o.Password = "Wr0ng-pa55word"
	st := newStore(t, o)
	ctx := testCtx(t, 10*time.Second)
	for name, err := range map[string]error{
		"Ping": st.Ping(ctx),
		"Get":  func() error { _, err := st.Get(ctx, "ns/x"); return err }(),
	} {
		if !errors.Is(err, store.ErrAuth) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s: %v, want ErrAuth only", name, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, `authentication failed for user "cicdstatemgr"`) ||
			strings.Contains(msg, o.Password) || strings.Contains(msg, srv.Password) || !strings.Contains(msg, srv.Addr) {
			t.Fatalf("%s message: %s", name, msg)
		}
	}
	// No credentials while the default user is off.
	o = opts(t, srv)
	o.Username, o.Password = "", ""
	st = newStore(t, o)
	if err := st.Ping(ctx); !errors.Is(err, store.ErrAuth) {
		t.Fatalf("no credentials: %v", err)
	}
}

func TestNoPermission(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	rdb := srv.Client()
	if err := rdb.Do(ctx, "ACL", "SETUSER", "reader", "on", ">reader-pw", "~*", "+@read", "+ping", "+hello", "+auth").Err(); err != nil {
		t.Fatal(err)
	}
	o := opts(t, srv)
	o.Username, o.Password = "reader", "reader-pw"
	st := newStore(t, o)
	_, _, err := st.Put(ctx, "ns/x", mustYAML(t, "a: 1"), store.PutOptions{})
	if !errors.Is(err, store.ErrAuth) || errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), `user "reader"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestTLS(t *testing.T) {
	s := redistest.Start(t, redistest.WithTLS(), redistest.WithDefaultUserDisabled())
	ctx := testCtx(t, 20*time.Second)
	st := newStore(t, opts(t, s))
	if err := st.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Put(ctx, "ns/tls", mustYAML(t, sample), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Update(ctx, "ns/tls", "op", appendItem("x")); err != nil {
		t.Fatal(err)
	}
	if got := items(t, st, "ns/tls"); len(got) != 1 {
		t.Fatalf("items = %v", got)
	}
	// Insecure mode needs no CA.
	o := opts(t, s)
	o.TLSCAFile, o.TLSInsecureSkipVerify = "", true
	if err := newStore(t, o).Ping(ctx); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	// An unknown CA is a TLS error, not a transient one.
	o = opts(t, s)
	o.TLSCAFile = ""
	err := newStore(t, o).Ping(ctx)
	if err == nil || errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("unknown CA: %v", err)
	}
	// Plain text against TLS fails (and does not hang).
	o = opts(t, s)
	o.TLS, o.TLSCAFile = false, ""
	o.ReadTimeout = 500 * time.Millisecond
	start := time.Now()
	if err := newStore(t, o).Ping(ctx); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("plain text to TLS: %v after %v", err, time.Since(start))
	}
}

func TestNewValidation(t *testing.T) {
	for name, o := range map[string]store.Options{
		"bad addr":    {Addr: "no-port"},
		"tls off":     {TLSCAFile: "/x"},
		"missing ca":  {TLS: true, TLSCAFile: "/nonexistent/ca.pem"},
		"negative db": {DB: -1},
		"prefix {":    {KeyPrefix: "a{b"},
		"prefix }":    {KeyPrefix: "a}b"},
	} {
		if _, err := store.New(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	st, err := store.New(store.Options{})
	if err != nil || st.Addr() != store.DefaultAddr {
		t.Fatalf("defaults: %v %v", st, err)
	}
	_ = st.Close()
}

// A reader running during 100 writes (20 with -race) of a ~1 MB document only ever
// sees whole documents. It checks the raw bytes of every read (cheap, exact) and decodes every
// tenth read through Get.
func TestReaderNeverSeesPartialDocument(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 5*time.Minute)
	const size = 1 << 20
	letter := func(gen int) string { return string(rune('a' + gen%26)) }
	mk := func(gen int) *document.Map {
		d := document.NewMap()
		d.Set("gen", gen)
		d.Set("payload", strings.Repeat(letter(gen), size))
		d.Set("tail", gen)
		return d
	}
	if _, _, err := st.Put(ctx, "ns/big", mk(0), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	checkRaw := func(raw []byte) error {
		var gen int
		if _, err := fmt.Sscanf(string(raw[:min(len(raw), 20)]), `{"gen":%d,`, &gen); err != nil {
			return fmt.Errorf("partial document (%d bytes): %.40q", len(raw), raw)
		}
		head := fmt.Sprintf(`{"gen":%d,"payload":"`, gen)
		tail := fmt.Sprintf(`","tail":%d}`, gen)
		body := raw[min(len(head), len(raw)):max(len(head), len(raw)-len(tail))]
		if len(raw) != len(head)+size+len(tail) || string(raw[:len(head)]) != head ||
			string(raw[len(raw)-len(tail):]) != tail || strings.Count(string(body), letter(gen)) != size {
			return fmt.Errorf("partial document (%d bytes): %.40q...", len(raw), raw)
		}
		return nil
	}
	checkDoc := func(d *document.Map) error {
		g, _ := d.Get("gen")
		tail, _ := d.Get("tail")
		p, _ := d.GetString("payload")
		gen, ok := g.(int)
		if !ok || tail != g || len(p) != size || strings.Count(p, letter(gen)) != size {
			return fmt.Errorf("partial document: gen %v tail %v payload %d bytes", g, tail, len(p))
		}
		return nil
	}
	done := make(chan struct{})
	var reads, decoded atomic.Int32
	readErr := make(chan error, 1)
	go func() {
		defer close(readErr)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			var err error
			if i%10 == 9 {
				var d *document.Map
				if d, err = st.Get(ctx, "ns/big"); err == nil {
					err = checkDoc(d)
					decoded.Add(1)
				}
			} else {
				var raw []byte
				if raw, err = st.GetRaw(ctx, "ns/big"); err == nil {
					err = checkRaw(raw)
				}
			}
			if err != nil {
				readErr <- err
				return
			}
			reads.Add(1)
		}
	}()
	// Encoding 1 MB takes ~0.3s under the race detector: fewer writes there.
	writes := 100
	if raceEnabled {
		writes = 20
	}
	for i := 1; i <= writes; i++ {
		var err error
		if i%10 != 0 {
			_, _, err = st.Put(ctx, "ns/big", mk(i), store.PutOptions{})
		} else {
			_, _, err = st.Update(ctx, "ns/big", "", func(d *document.Map) (bool, []byte, error) {
				d.Set("gen", i)
				d.Set("payload", strings.Repeat(letter(i), size))
				d.Set("tail", i)
				return true, nil, nil
			})
		}
		if err != nil {
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
	t.Logf("%d whole reads (%d decoded) during %d writes", reads.Load(), decoded.Load(), writes)
}
