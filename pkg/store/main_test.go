package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// srv is the Redis shared by the tests of this package (default user off, like
// production); tests isolate themselves with a key prefix of their own.
var srv *redistest.Server

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the fault tests cause plenty on purpose.
	if os.Getenv("STORE_TEST_REDIS_LOGS") == "" {
		redis.SetLogger(quietLogger{})
	}
	redistest.Main(m, &srv, redistest.WithDefaultUserDisabled())
}

var prefixSeq atomic.Int64

// opts are store options for s with a key prefix unique to the call (tests may run
// more than once with -count).
func opts(t testing.TB, s *redistest.Server) store.Options {
	o := store.Options{
		Addr:      s.Addr,
		Username:  s.Username,
		Password:  s.Password,
		KeyPrefix: fmt.Sprintf("t%d:%s", prefixSeq.Add(1), strings.ReplaceAll(t.Name(), "/", "_")),
	}
	if s.TLS {
		o.TLS, o.TLSCAFile = true, s.CAFile
	}
	return o
}

func newStore(t testing.TB, o store.Options) *store.Store {
	t.Helper()
	st, err := store.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// shared is a store on the shared server.
func shared(t testing.TB) *store.Store { return newStore(t, opts(t, srv)) }

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustYAML(t testing.TB, y string) *document.Map {
	t.Helper()
	m, err := document.ParseYAMLMap([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := document.MarshalJSON(v, document.JSONStyle{})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docOpRecord reads the op record of opKey beside the document of ref (the record
// of a Put, Update or UpdatePaths).
func docOpRecord(t testing.TB, st *store.Store, ref, opKey string) ([]byte, bool) {
	t.Helper()
	b, err := srv.Client().Get(context.Background(), st.DocOpKey(ref, opKey)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}
