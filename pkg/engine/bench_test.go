// Benchmarks of set and get on a context whose state is ~1 KB versus ~1 MB, run
// through engine.Do against a real Redis (internal/redistest). The extra state
// lives in a separate subtree (state.big, many small entries); the operations
// touch state.key1 only. The goal is that the 1 MB case costs no more than 3x
// the 1 KB case.
//
//	go test ./pkg/engine -run '^$' -bench . -benchtime 2s
//
// BenchmarkSetGetRatio measures both sizes in the same run (alternating, so
// machine noise hits both alike) and reports per-op times in µs and the ratios
// set-ratio, get-ratio and ratio-1MB/1KB (set+get).
//
// Numbers on the 2-core development machine (shared, so noisy; Redis 7.0,
// -benchtime 2s), before (the whole document as one JSON string, decoded,
// re-encoded and written on every op) and after (a hash with a field per
// top-level key and per state key; set uses UpdatePaths, get GetPaths):
//
//	                           before          after
//	BenchmarkSet/state=1KB     474 µs/op       172-262 µs/op
//	BenchmarkSet/state=1MB     97.1 ms/op      150-253 µs/op
//	BenchmarkGet/state=1KB     354 µs/op       73-107 µs/op
//	BenchmarkGet/state=1MB     93.6 ms/op      107-126 µs/op
//	BenchmarkSetGetRatio       set-ratio 49    set-ratio 0.80-0.87
//	                           get-ratio 116   get-ratio 1.10-1.29
//	                           ratio 71        ratio-1MB/1KB 0.89-1.00
//
// A full read (store.Get, or a get whose value is a template) still decodes
// everything: ~20 ms for 1 MB with the byte-scanning JSON parser (was ~80 ms).
package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// benchSizes are the approximate sizes of the state, as JSON.
var benchSizes = []struct {
	name string
	size int
}{
	{"state=1KB", 1 << 10},
	{"state=1MB", 1 << 20},
}

// benchContext initializes a context id whose state holds about size bytes of
// JSON: state.key1 plus state.big, a map of ~100-byte entries.
func benchContext(b *testing.B, e *engine.Engine, cfg *config.Config, id string, size int) {
	b.Helper()
	ctx := context.Background()
	if _, err := e.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpInit, ID: id, Config: cfg, AppConfig: []byte(appYAML), Bases: bases}); err != nil {
		b.Fatal(err)
	}
	big := document.NewMap()
	const entry = 100 // bytes of JSON per entry, roughly
	for i := 0; (i+1)*entry < size; i++ {
		m := document.NewMap()
		m.Set("name", fmt.Sprintf("step-%06d", i))
		m.Set("status", "Succeeded")
		m.Set("url", fmt.Sprintf("https://ci.example.com/r/%06d", i))
		big.Set(fmt.Sprintf("k%06d", i), m)
	}
	sets := []document.Assignment{{Path: "state.key1", Value: "value1"}, {Path: "state.big", Value: big}}
	if _, err := e.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpSet, ID: id, Config: cfg, Sets: sets}); err != nil {
		b.Fatal(err)
	}
}

// benchEngine is newEngine for benchmarks: a store with a key prefix of its own.
func benchEngine(b *testing.B) (*engine.Engine, *config.Config) {
	b.Helper()
	st, err := store.New(store.Options{Addr: srv.Addr, Username: srv.Username, Password: srv.Password,
		KeyPrefix: "b" + strings.NewReplacer("/", "-").Replace(b.Name())})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1}\n"), nil)
	if err != nil {
		b.Fatal(err)
	}
	return &engine.Engine{Store: st, Templates: tmpl.New(tmpl.Options{})}, cfg
}

func benchSet(b *testing.B, e *engine.Engine, cfg *config.Config, id string, i int) {
	_, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpSet, ID: id, Config: cfg,
		Sets: []document.Assignment{{Path: "state.key1", Value: fmt.Sprintf("value-%d", i)}}})
	if err != nil {
		b.Fatal(err)
	}
}

func benchGet(b *testing.B, e *engine.Engine, cfg *config.Config, id string) {
	out, err := e.Do(context.Background(), engine.Request{Namespace: "ns", Op: engine.OpGet, ID: id, Config: cfg,
		Gets: []engine.GetSpec{{Name: "v", Expr: "state.key1"}}})
	if err != nil {
		b.Fatal(err)
	}
	if v, _ := out.Result("v"); v == "" {
		b.Fatal("empty state.key1")
	}
}

func BenchmarkSet(b *testing.B) {
	e, cfg := benchEngine(b)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			id := "bench-set-" + s.name
			benchContext(b, e, cfg, id, s.size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				benchSet(b, e, cfg, id, i)
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	e, cfg := benchEngine(b)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			id := "bench-get-" + s.name
			benchContext(b, e, cfg, id, s.size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				benchGet(b, e, cfg, id)
			}
		})
	}
}

// BenchmarkSetGetRatio runs set and get on both sizes in turn and reports the
// cost of the 1 MB case relative to the 1 KB case.
func BenchmarkSetGetRatio(b *testing.B) {
	e, cfg := benchEngine(b)
	small, big := "ratio-small", "ratio-big"
	benchContext(b, e, cfg, small, benchSizes[0].size)
	benchContext(b, e, cfg, big, benchSizes[1].size)
	var setSmall, setBig, getSmall, getBig time.Duration
	timed := func(d *time.Duration, f func()) {
		start := time.Now()
		f()
		*d += time.Since(start)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		timed(&setSmall, func() { benchSet(b, e, cfg, small, i) })
		timed(&setBig, func() { benchSet(b, e, cfg, big, i) })
		timed(&getSmall, func() { benchGet(b, e, cfg, small) })
		timed(&getBig, func() { benchGet(b, e, cfg, big) })
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(us(setSmall), "set-1KB-µs/op")
	b.ReportMetric(us(setBig), "set-1MB-µs/op")
	b.ReportMetric(us(getSmall), "get-1KB-µs/op")
	b.ReportMetric(us(getBig), "get-1MB-µs/op")
	b.ReportMetric(float64(setBig)/float64(setSmall), "set-ratio")
	b.ReportMetric(float64(getBig)/float64(getSmall), "get-ratio")
	b.ReportMetric(float64(setBig+getBig)/float64(setSmall+getSmall), "ratio-1MB/1KB")
}
