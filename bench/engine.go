package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// engineSizes are the approximate sizes of the state, as JSON.
var engineSizes = []struct {
	name string
	size int
}{{"1 KB", 1 << 10}, {"100 KB", 100 << 10}, {"1 MB", 1 << 20}}

// engineResult is set and get on the engine alone for one state size: with
// an op key, as the controller calls it (the CustomRun's UID makes the op
// exactly-once), and without, as the CLI calls it.
type engineResult struct {
	size               string
	set, get           []time.Duration // with an op key
	setNoKey, getNoKey []time.Duration
}

// engineBench calls pkg/engine directly against the bench Redis: a set of
// state.key1 and a get of it, with and without an op key, on
// contexts whose state holds ~1 KB, ~100 KB and ~1 MB (state.big, a map of
// ~100-byte entries). The sizes take turns, so machine noise hits them alike.
func engineBench(ctx context.Context, env *benchEnv, iters int) ([]*engineResult, error) {
	st, err := store.New(store.Options{Addr: env.redisAddr, Username: "cicdstatemgr", Password: "123$aBcZ",
		KeyPrefix: "bench-engine"})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1}\n"), nil)
	if err != nil {
		return nil, err
	}
	e := &engine.Engine{Store: st, Templates: tmpl.New(tmpl.Options{})}
	stamp := time.Now().UnixNano()
	var out []*engineResult
	var ids []string
	for _, s := range engineSizes {
		id := fmt.Sprintf("engine-%d-%d", s.size, stamp)
		if err := fillContext(ctx, e, cfg, id, s.size); err != nil {
			return nil, fmt.Errorf("engine bench, %s: %w", s.name, err)
		}
		ids = append(ids, id)
		out = append(out, &engineResult{size: s.name})
	}
	for i := 0; i < iters; i++ {
		for k, id := range ids {
			for _, keyed := range []bool{true, false} {
				value := fmt.Sprintf("value-%d-%t", i, keyed)
				setKey, getKey := "", ""
				if keyed {
					setKey, getKey = fmt.Sprintf("%s-set-%d", id, i), fmt.Sprintf("%s-get-%d", id, i)
				}
				t0 := time.Now()
				if _, err := e.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpSet, ID: id, Config: cfg, OpKey: setKey,
					Sets: []document.Assignment{{Path: "state.key1", Value: value}}}); err != nil {
					return nil, err
				}
				t1 := time.Now()
				o, err := e.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpGet, ID: id, Config: cfg, OpKey: getKey,
					Gets: []engine.GetSpec{{Name: "v", Expr: "state.key1"}}})
				if err != nil {
					return nil, err
				}
				t2 := time.Now()
				if v, _ := o.Result("v"); v != value {
					return nil, fmt.Errorf("engine bench: get returned %q after setting %s", v, value)
				}
				r := out[k]
				if keyed {
					r.set, r.get = append(r.set, t1.Sub(t0)), append(r.get, t2.Sub(t1))
				} else {
					r.setNoKey, r.getNoKey = append(r.setNoKey, t1.Sub(t0)), append(r.getNoKey, t2.Sub(t1))
				}
			}
		}
	}
	for _, r := range out {
		log.Printf("engine, state %s: with op key set p50 %s, get p50 %s; without set p50 %s, get p50 %s", r.size,
			us(summarize(r.set).p50), us(summarize(r.get).p50), us(summarize(r.setNoKey).p50), us(summarize(r.getNoKey).p50))
	}
	return out, nil
}

// fillContext creates context id with state.key1 and state.big of ~size bytes.
func fillContext(ctx context.Context, e *engine.Engine, cfg *config.Config, id string, size int) error {
	if _, err := e.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpInit, ID: id, Config: cfg, AppConfig: []byte(appConfig)}); err != nil {
		return err
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
	_, err := e.Do(ctx, engine.Request{Namespace: "ns", Op: engine.OpSet, ID: id, Config: cfg,
		Sets: []document.Assignment{{Path: "state.key1", Value: "value1"}, {Path: "state.big", Value: big}}})
	return err
}
