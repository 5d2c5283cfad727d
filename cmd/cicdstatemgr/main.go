// Command cicdstatemgr is the CLI: flag-compatible with the original Python
// cicdstatemgr, backed by Redis. See pkg/cli.
package main

import (
	"log/slog"
	"os"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/cli"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

func main() {
	cli.EventRunnerFactory = func(st *store.Store, r *tmpl.Env, log *slog.Logger) engine.EventRunner {
		return handlers.NewRunner(st, r, log, handlers.WithGates(gate.New(st)), handlers.WithDocumentInHeaders())
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
