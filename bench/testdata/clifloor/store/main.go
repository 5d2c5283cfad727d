// Command store is the floor of a --get that reuses the project's own config
// and store packages (pkg/config, pkg/store: go-redis, the context layout),
// without the engine, templates or HTTP: what a separate --get binary built
// from the packages the CLI already has would cost.
//
//	store CONFIG SECRETS NAMESPACE ID PATH
package main

import (
	"context"
	"os"

	"github.com/cicdstatemgr/cicdstatemgr/bench/testdata/clifloor/resp"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

func main() {
	a := os.Args[1:]
	cfg, err := config.Load(a[0], a[1])
	if err != nil {
		resp.Print("", err)
	}
	rc, err := cfg.Redis()
	if err != nil {
		resp.Print("", err)
	}
	st, err := store.New(rc.StoreOptions())
	if err != nil {
		resp.Print("", err)
	}
	defer st.Close()
	doc, err := st.GetPaths(context.Background(), store.Ref(a[2], a[3]), []string{a[4]})
	if err != nil {
		resp.Print("", err)
	}
	v, _, _ := document.Lookup(doc, a[4])
	resp.Print(v, nil)
}
