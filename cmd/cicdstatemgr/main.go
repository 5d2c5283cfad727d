// Command cicdstatemgr is the CLI: flag-compatible with the original Python
// cicdstatemgr, backed by Redis. See pkg/cli.
package main

import (
	"os"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
