package slack_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

var srv *redistest.Server

func TestMain(m *testing.M) {
	redistest.Main(m, &srv)
}

var prefixSeq atomic.Int64

func newChoices(t testing.TB) *gate.Store {
	t.Helper()
	st, err := store.New(store.Options{
		Addr: srv.Addr, Username: srv.Username, Password: srv.Password,
		KeyPrefix: fmt.Sprintf("t%d:%s", prefixSeq.Add(1), strings.ReplaceAll(t.Name(), "/", "_")),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return gate.New(st)
}
