package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// TestTxRetriesCountsLostRaces: an Update whose document another writer changes
// between its read (WATCH) and its EXEC loses the race once, is tried again, and the
// retry is counted; an Update nobody races is not.
func TestTxRetriesCountsLostRaces(t *testing.T) {
	st := shared(t)
	ctx := testCtx(t, 30*time.Second)
	if _, _, err := st.Put(ctx, "ns/hot", mustYAML(t, sample), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	before := store.TxRetries()
	if _, _, err := st.Update(ctx, "ns/hot", "", appendItem("calm")); err != nil {
		t.Fatal(err)
	}
	if got := store.TxRetries() - before; got != 0 {
		t.Fatalf("an uncontended Update counted %v retries, want 0", got)
	}
	calls := 0
	raced := func(d *document.Map) (bool, []byte, error) {
		calls++
		if calls == 1 {
			if _, _, err := st.Update(ctx, "ns/hot", "", appendItem("racer")); err != nil {
				return false, nil, err
			}
		}
		return appendItem("slow")(d)
	}
	before = store.TxRetries()
	if _, _, err := st.Update(ctx, "ns/hot", "", raced); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("the raced update ran its function %d times, want 2 (one lost race)", calls)
	}
	if got := store.TxRetries() - before; got != 1 {
		t.Fatalf("one lost race counted %v retries, want 1", got)
	}
	got := items(t, st, "ns/hot")
	if len(got) != 3 || got[1] != "racer" || got[2] != "slow" {
		t.Fatalf("items %v, want [calm racer slow]", got)
	}
}

// TestUpdateLeavesNoWatchBehind: an update that sends no EXEC (nothing to
// write) ends the WATCH it pipelined with its reads, so the connection goes
// back to the pool watching nothing. Otherwise the next update on that
// connection would lose a race to a change made in between, and be retried.
func TestUpdateLeavesNoWatchBehind(t *testing.T) {
	nothing := func(*document.Map) (bool, []byte, error) { return false, nil, nil }
	for _, tc := range []struct {
		name   string
		update func(st *store.Store, ctx context.Context, ref string, fn store.UpdateFunc) error
	}{
		{"Update", func(st *store.Store, ctx context.Context, ref string, fn store.UpdateFunc) error {
			_, _, err := st.Update(ctx, ref, "", fn)
			return err
		}},
		{"UpdatePaths", func(st *store.Store, ctx context.Context, ref string, fn store.UpdateFunc) error {
			_, _, err := st.UpdatePaths(ctx, ref, "", []string{"state.items"}, fn)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := shared(t)
			ctx := testCtx(t, 30*time.Second)
			const ref = "ns/idle"
			if _, _, err := st.Put(ctx, ref, mustYAML(t, sample), store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := tc.update(st, ctx, ref, nothing); err != nil {
				t.Fatal(err)
			}
			// another client touches the document (same value): a WATCH left
			// on the pooled connection would see it as changed
			rdb := srv.Client()
			defer rdb.Close()
			key := st.DocKey(ref)
			order, err := rdb.HGet(ctx, key, "order").Result()
			if err != nil {
				t.Fatal(err)
			}
			if err := rdb.HSet(ctx, key, "order", order).Err(); err != nil {
				t.Fatal(err)
			}
			before := store.TxRetries()
			calls := 0
			counted := func(d *document.Map) (bool, []byte, error) {
				calls++
				return appendItem("after")(d)
			}
			if err := tc.update(st, ctx, ref, counted); err != nil {
				t.Fatal(err)
			}
			if got := store.TxRetries() - before; got != 0 || calls != 1 {
				t.Fatalf("the update after an idle one was retried %v times (function run %d times): a WATCH was left on the connection", got, calls)
			}
		})
	}
}
