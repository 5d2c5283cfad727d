package store_test

import (
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
