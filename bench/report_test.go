package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The report shows the CLI floors measured beside --get, each ÷ Go hello.
func TestReportShowsCLIFloors(t *testing.T) {
	out := "BenchmarkCLIGet-2   \t      30\t  34462824 ns/op\t         1.805 goredis-x-hello\t        14.77 hello-ms/op\t        34.46 ms/op\t         1.189 net-x-hello\t         2.116 store-x-hello\t         7.811 true-ms/op\t         2.333 x-hello\t         4.412 x-true\t         1.415 yaml-x-hello\n"
	path := filepath.Join(t.TempDir(), "cli.txt")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	cli, err := parseGoBench(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	r := &report{cli: cli}
	r.cliFloorsSection(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, r.cliBench("BenchmarkCLIGet"))
	for _, want := range []string{"| the CLI | ", "2.33×", "| store | ", "2.12×", "| goredis | ", "1.80×", "| yaml | ", "1.42×", "| net | ", "1.19×"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the floors table lacks %q:\n%s", want, b.String())
		}
	}
}
