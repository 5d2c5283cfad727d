// Command yaml is the floor of a --get that parses its config with
// gopkg.in/yaml.v3 (as the CLI does) and gets the value with a hand-written
// Redis client.
//
//	yaml CONFIG SECRETS KEY FIELD...
package main

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/cicdstatemgr/cicdstatemgr/bench/testdata/clifloor/resp"
)

// file is the part of config.yaml and secrets.yaml a --get needs.
type file struct {
	Cicdstatemgr struct {
		Datasources struct {
			Redis struct {
				Host, Port, Username, Password string
			}
		}
	}
}

func main() {
	a := os.Args[1:]
	var cfg, sec file
	for i, into := range []*file{&cfg, &sec} {
		b, err := os.ReadFile(a[i])
		if err != nil {
			fail(err)
		}
		if err := yaml.Unmarshal(b, into); err != nil {
			fail(err)
		}
	}
	r, s := cfg.Cicdstatemgr.Datasources.Redis, sec.Cicdstatemgr.Datasources.Redis
	v, err := resp.LastField(r.Host+":"+r.Port, s.Username, s.Password, a[2], a[3:]...)
	if err != nil {
		fail(err)
	}
	fmt.Println(v)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
