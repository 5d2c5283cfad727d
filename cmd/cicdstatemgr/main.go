// Command cicdstatemgr is the CLI: flag-compatible with the original Python
// cicdstatemgr, backed by Redis. See pkg/cli.
package main

import (
	"log/slog"
	"os"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/choice"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/cli"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/events"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/render"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

func main() {
	cli.EventRunnerFactory = func(st *store.Store, r *render.Renderer, log *slog.Logger) engine.EventRunner {
		return events.NewRunner(st, r, log, events.WithChoices(choice.New(st)))
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
