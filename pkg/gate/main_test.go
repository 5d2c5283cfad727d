package gate_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// srv is the Redis shared by the tests of this package; every test uses a key prefix
// of its own.
var srv *redistest.Server

func TestMain(m *testing.M) {
	redistest.Main(m, &srv, redistest.WithDefaultUserDisabled())
}

var prefixSeq atomic.Int64

func uniquePrefix(t testing.TB) string {
	return fmt.Sprintf("t%d:%s", prefixSeq.Add(1), strings.ReplaceAll(t.Name(), "/", "_"))
}

// newStores makes n gate stores with their own connections sharing one key prefix.
func newStores(t testing.TB, n int) []*gate.Store {
	t.Helper()
	prefix := uniquePrefix(t)
	out := make([]*gate.Store, n)
	for i := range out {
		st, err := store.New(store.Options{Addr: srv.Addr, Username: srv.Username, Password: srv.Password, KeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		out[i] = gate.New(st)
	}
	return out
}

func newStore(t testing.TB) *gate.Store { return newStores(t, 1)[0] }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pending(key, ctxID string, opts ...string) gate.Gate {
	p := gate.Gate{Key: key, ContextID: ctxID, Pipeline: "build", Event: "success", Title: "Deploy?"}
	for _, o := range opts {
		p.Options = append(p.Options, gate.Option{Value: o, Text: strings.ToUpper(o)})
	}
	return p
}
