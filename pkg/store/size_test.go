package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// storedSize is the encoded size of a stored context: the sum of the lengths
// of its hash fields and values.
func storedSize(t *testing.T, st *store.Store, ref string) int64 {
	t.Helper()
	h, err := st.Client().HGetAll(testCtx(t, 5*time.Second), st.DocKey(ref)).Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for f, v := range h {
		n += int64(len(f) + len(v))
	}
	return n
}

func sizedStore(t *testing.T, prefix string, max int64) *store.Store {
	o := opts(t, srv)
	o.KeyPrefix = prefix
	o.MaxContextBytes = max
	return newStore(t, o)
}

func wantTooLarge(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, store.ErrTooLarge) || !strings.Contains(err.Error(), "budgets.contextBytes") {
		t.Fatalf("%s: got %v, want ErrTooLarge", what, err)
	}
}

func TestContextBudgetPut(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	free := shared(t)
	ref := "ns/put"
	doc := mustYAML(t, "state: {a: 1, s: "+strings.Repeat("x", 500)+"}\nchannel: c\n")
	if _, _, err := free.Put(ctx, ref, doc, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	size := storedSize(t, free, ref)
	prefix := opts(t, srv).KeyPrefix + "b"
	atLimit := sizedStore(t, prefix, size)
	if _, _, err := atLimit.Put(ctx, ref, doc, store.PutOptions{}); err != nil {
		t.Fatalf("at the budget: %v", err)
	}
	under := sizedStore(t, prefix, size-1)
	_, _, err := under.Put(ctx, "ns/other", doc, store.PutOptions{OpKey: "k", Result: []byte("r")})
	wantTooLarge(t, err, "one byte over")
	if ok, _ := under.Exists(ctx, "ns/other"); ok {
		t.Fatal("a context over the budget was written")
	}
	if _, found := docOpRecord(t, under, "ns/other", "k"); found {
		t.Fatal("the op record of a refused Put was written")
	}
}

// TestContextBudgetUpdates: Update and UpdatePaths refuse a write that grows
// the context one byte past the budget, write nothing, and accept the write
// that reaches it exactly; a write that shrinks a context over the budget
// passes.
func TestContextBudgetUpdates(t *testing.T) {
	for _, partial := range []bool{false, true} {
		name := "Update"
		if partial {
			name = "UpdatePaths"
		}
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			free := shared(t)
			ref := "ns/upd"
			doc := mustYAML(t, "state: {a: 1, big: "+strings.Repeat("y", 300)+", s: ab}\nchannel: c\nother: {k: v}\n")
			if _, _, err := free.Put(ctx, ref, doc, store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			size := storedSize(t, free, ref)
			st := sizedStore(t, prefixOf(t, free), size+1)
			update := func(v string, opKey string) error {
				fn := setFn([2]any{"state.s", v})
				var err error
				if partial {
					_, _, err = st.UpdatePaths(ctx, ref, opKey, []string{"state.s"}, fn)
				} else {
					_, _, err = st.Update(ctx, ref, opKey, fn)
				}
				return err
			}
			// "ab" -> "abc": one byte more, exactly the budget
			if err := update("abc", ""); err != nil {
				t.Fatalf("at the budget: %v", err)
			}
			if got := storedSize(t, st, ref); got != size+1 {
				t.Fatalf("size %d, want %d", got, size+1)
			}
			wantTooLarge(t, update("abcd", "op1"), "one byte over")
			got, err := st.Get(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if v, _, _ := document.Lookup(got, "state.s"); v != "abc" {
				t.Fatalf("state.s = %v after a refused write", v)
			}
			if _, found := docOpRecord(t, st, ref, "op1"); found {
				t.Fatal("the op record of a refused update was written")
			}
			// a lowered budget: shrinking still passes, growing does not
			low := sizedStore(t, prefixOf(t, free), 10)
			var shrink, grow error
			if partial {
				_, _, shrink = low.UpdatePaths(ctx, ref, "", []string{"state.s"}, setFn([2]any{"state.s", "a"}))
				_, _, grow = low.UpdatePaths(ctx, ref, "", []string{"state.s"}, setFn([2]any{"state.s", "ab"}))
			} else {
				_, _, shrink = low.Update(ctx, ref, "", setFn([2]any{"state.s", "a"}))
				_, _, grow = low.Update(ctx, ref, "", setFn([2]any{"state.s", "ab"}))
			}
			if shrink != nil {
				t.Fatalf("shrinking: %v", shrink)
			}
			wantTooLarge(t, grow, "growing over a lowered budget")
		})
	}
}

// TestContextBudgetUpdatePathsCountsUnloadedFields: a set of a small new key
// is refused when the fields it did not load make the context too large.
func TestContextBudgetUpdatePathsCountsUnloadedFields(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	free := shared(t)
	ref := "ns/unloaded"
	doc := mustYAML(t, "state: {big: "+strings.Repeat("z", 1000)+"}\nbig2: "+strings.Repeat("w", 1000)+"\n")
	if _, _, err := free.Put(ctx, ref, doc, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	st := sizedStore(t, prefixOf(t, free), storedSize(t, free, ref)+5)
	_, _, err := st.UpdatePaths(ctx, ref, "", []string{"state.n"}, setFn([2]any{"state.n", strings.Repeat("q", 40)}))
	wantTooLarge(t, err, "new state key")
	_, _, err = st.UpdatePaths(ctx, ref, "", []string{"x"}, setFn([2]any{"x", strings.Repeat("q", 40)}))
	wantTooLarge(t, err, "new top-level key")
	if got, _ := st.Get(ctx, ref); got.Has("x") {
		t.Fatal("refused key written")
	}
}

// prefixOf is the key prefix of a store of the tests (its DocKey up to ":{").
func prefixOf(t *testing.T, st *store.Store) string {
	k := st.DocKey("ns/x")
	i := strings.Index(k, ":{")
	if i < 0 {
		t.Fatalf("unexpected key %s", k)
	}
	return k[:i]
}

// TestContextBudgetWithoutHSTRLEN: an ACL user that may not send HSTRLEN
// (an ACL line from before the budgets) still gets the budget checked.
func TestContextBudgetWithoutHSTRLEN(t *testing.T) {
	s := redistest.Start(t, redistest.WithConfig("user lim on >lim-pw ~* &* +@all -hstrlen"))
	ctx := testCtx(t, 30*time.Second)
	o := store.Options{Addr: s.Addr, Username: "lim", Password: "lim-pw", KeyPrefix: "p"}
	free := newStore(t, o)
	ref := "ns/acl"
	if _, _, err := free.Put(ctx, ref, mustYAML(t, "state: {big: "+strings.Repeat("z", 500)+"}\nother: x\n"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	size := storedSize(t, free, ref)
	o.MaxContextBytes = size + 20
	st := newStore(t, o)
	_, _, err := st.UpdatePaths(ctx, ref, "", []string{"state.n"}, setFn([2]any{"state.n", strings.Repeat("q", 40)}))
	wantTooLarge(t, err, "new state key")
	if _, _, err := st.UpdatePaths(ctx, ref, "", []string{"state.n"}, setFn([2]any{"state.n", "q"})); err != nil {
		t.Fatalf("under the budget: %v", err)
	}
}
