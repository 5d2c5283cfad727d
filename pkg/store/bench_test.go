package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// benchDoc is a context whose state holds about size bytes of JSON in entries of ~100
// bytes (a realistic shape: many small values, not one big string).
func benchDoc(size int) *document.Map {
	state := document.NewMap()
	state.Set("counter", 0)
	entries := document.NewMap()
	for i := 0; i*100 < size; i++ {
		e := document.NewMap()
		e.Set("name", fmt.Sprintf("step-%06d", i))
		e.Set("status", "Succeeded")
		e.Set("url", fmt.Sprintf("https://ci.example.com/runs/%06d/logs", i))
		entries.Set(fmt.Sprintf("k%06d", i), e)
	}
	state.Set("entries", entries)
	d := document.NewMap()
	d.Set("cicdContextDataId", "bench")
	d.Set("state", state)
	return d
}

func benchStore(b *testing.B, size int) *store.Store {
	st := newStore(b, opts(b, srv))
	doc := benchDoc(size)
	raw, _ := document.MarshalJSON(doc, document.JSONStyle{})
	if _, _, err := st.Put(context.Background(), "ns/bench", doc, store.PutOptions{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	return st
}

func benchUpdate(b *testing.B, size int) {
	st := benchStore(b, size)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		_, _, err := st.Update(ctx, "ns/bench", "", func(d *document.Map) (bool, []byte, error) {
			s, _ := d.GetMap("state")
			c, _ := s.Get("counter")
			s.Set("counter", c.(int)+1)
			return true, nil, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchGet(b *testing.B, size int) {
	st := benchStore(b, size)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if _, err := st.Get(ctx, "ns/bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdate1KB(b *testing.B) { benchUpdate(b, 1<<10) }
func BenchmarkUpdate1MB(b *testing.B) { benchUpdate(b, 1<<20) }
func BenchmarkGet1KB(b *testing.B)    { benchGet(b, 1<<10) }
func BenchmarkGet1MB(b *testing.B)    { benchGet(b, 1<<20) }

func benchUpdatePaths(b *testing.B, size int) { benchUpdatePathsWith(b, context.Background(), size) }

// withHistory records each write in the context's history, redacting values
// as the engine does (docs/history.md).
func withHistory() context.Context {
	return store.WithHistory(context.Background(), store.HistoryMeta{Op: "set", Who: history.Who{Namespace: "ns", CustomRun: "run-1"},
		Redact: func(s string) string { return strings.ReplaceAll(s, "not-in-the-values", "[REDACTED]") }})
}

func benchUpdatePathsWith(b *testing.B, ctx context.Context, size int) {
	st := benchStore(b, size)
	for i := 0; i < b.N; i++ {
		_, _, err := st.UpdatePaths(ctx, "ns/bench", "", []string{"state.counter"}, func(d *document.Map) (bool, []byte, error) {
			s, _ := d.GetMap("state")
			c, _ := s.Get("counter")
			s.Set("counter", c.(int)+1)
			return true, nil, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchGetPaths(b *testing.B, size int) {
	st := benchStore(b, size)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if _, err := st.GetPaths(ctx, "ns/bench", []string{"state.counter"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdatePaths1KB(b *testing.B) { benchUpdatePaths(b, 1<<10) }
func BenchmarkUpdatePaths1MB(b *testing.B) { benchUpdatePaths(b, 1<<20) }
func BenchmarkGetPaths1KB(b *testing.B)    { benchGetPaths(b, 1<<10) }
func BenchmarkGetPaths1MB(b *testing.B)    { benchGetPaths(b, 1<<20) }

// The writes of BenchmarkUpdatePaths recorded in the history: the ratio is
// the cost of the history (docs/history.md, "Cost").
func BenchmarkUpdatePathsHistory1KB(b *testing.B) { benchUpdatePathsWith(b, withHistory(), 1<<10) }
func BenchmarkUpdatePathsHistory1MB(b *testing.B) { benchUpdatePathsWith(b, withHistory(), 1<<20) }
