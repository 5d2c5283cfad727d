// Command store is the floor of a --get that reuses the project's own config
// and store packages (pkg/config, pkg/store: go-redis, the context layout),
// without the engine, templates or HTTP: what a separate --get binary built
// from the packages the CLI already has would cost.
//
//	store CONFIG SECRETS NAMESPACE ID PATH
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

func main() {
	a := os.Args[1:]
	cfg, err := config.Load(a[0], a[1])
	if err != nil {
		fail(err)
	}
	rc, err := cfg.Redis()
	if err != nil {
		fail(err)
	}
	st, err := store.New(rc.StoreOptions())
	if err != nil {
		fail(err)
	}
	defer st.Close()
	doc, err := st.GetPaths(context.Background(), store.Ref(a[2], a[3]), []string{a[4]})
	if err != nil {
		fail(err)
	}
	v, _, _ := document.Lookup(doc, a[4])
	fmt.Println(v)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
