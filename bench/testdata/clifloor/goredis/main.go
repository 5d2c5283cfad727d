// Command goredis is the floor of a --get that parses its config with
// gopkg.in/yaml.v3 and gets the value with go-redis (as the CLI does), without
// any of the project's packages.
//
//	goredis CONFIG SECRETS KEY FIELD...
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"
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
	rdb := redis.NewClient(&redis.Options{Addr: r.Host + ":" + r.Port, Username: s.Username, Password: s.Password})
	defer rdb.Close()
	vals, err := rdb.HMGet(context.Background(), a[2], a[3:]...).Result()
	if err != nil {
		fail(err)
	}
	v, _ := vals[len(vals)-1].(string)
	fmt.Println(strings.Trim(v, `"`))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
