// Command net is the lowest floor of a --get: it reads the two config files
// without parsing them, then gets the value over one TCP connection with a
// hand-written Redis client. What a --get that links only the standard
// library's net costs.
//
//	net CONFIG SECRETS ADDR USER PASSWORD KEY FIELD...
package main

import (
	"os"

	"github.com/cicdstatemgr/cicdstatemgr/bench/testdata/clifloor/resp"
)

func main() {
	a := os.Args[1:]
	for _, f := range a[:2] {
		if _, err := os.ReadFile(f); err != nil {
			resp.Print("", err)
		}
	}
	resp.Print(resp.LastField(a[2], a[3], a[4], a[5], a[6:]...))
}
