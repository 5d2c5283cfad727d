// Command goredis is the floor of a --get that parses its config with
// gopkg.in/yaml.v3 and gets the value with go-redis (as the CLI does), without
// any of the project's packages.
//
//	goredis CONFIG SECRETS KEY FIELD...
package main

import (
	"context"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/bench/testdata/clifloor/conf"
	"github.com/cicdstatemgr/cicdstatemgr/bench/testdata/clifloor/resp"
)

func main() {
	a := os.Args[1:]
	addr, user, password, err := conf.Redis(a[0], a[1])
	if err != nil {
		resp.Print("", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, Username: user, Password: password})
	defer rdb.Close()
	vals, err := rdb.HMGet(context.Background(), a[2], a[3:]...).Result()
	if err != nil {
		resp.Print("", err)
	}
	v, _ := vals[len(vals)-1].(string)
	resp.Print(strings.Trim(v, `"`), nil)
}
