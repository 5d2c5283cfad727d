// Command yaml is the floor of a --get that parses its config with
// gopkg.in/yaml.v3 (as the CLI does) and gets the value with a hand-written
// Redis client.
//
//	yaml CONFIG SECRETS KEY FIELD...
package main

import (
	"os"

	"github.com/cicdstatemgr/cicdstatemgr/bench/testdata/clifloor/conf"
	"github.com/cicdstatemgr/cicdstatemgr/bench/testdata/clifloor/resp"
)

func main() {
	a := os.Args[1:]
	addr, user, password, err := conf.Redis(a[0], a[1])
	if err != nil {
		resp.Print("", err)
	}
	resp.Print(resp.LastField(addr, user, password, a[2], a[3:]...))
}
