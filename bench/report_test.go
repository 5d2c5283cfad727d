package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
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

// pprofTop reads the table of `go tool pprof -top`, by flat or cumulative
// value, at most the nodes asked for.
func TestPprofTopReadsTheTable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "heap.pb.gz")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	keep = make([][]byte, 64)
	for i := range keep {
		keep[i] = make([]byte, 64<<10)
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, cum := range []bool{false, true} {
		top, err := pprofTop(context.Background(), file, cum, 3, "-sample_index=inuse_space")
		if err != nil {
			t.Fatal(err)
		}
		if len(top) == 0 || len(top) > 3 {
			t.Fatalf("cum=%v: %d rows, want 1 to 3: %q", cum, len(top), top)
		}
		for _, row := range top {
			if v, fn, ok := strings.Cut(row, " "); !ok || fn == "" || !strings.ContainsAny(v[len(v)-1:], "BkMG") {
				t.Errorf("cum=%v: row %q is not \"<size> <function>\"", cum, row)
			}
		}
	}
}

// keep holds the allocations the heap profile of TestPprofTopReadsTheTable shows.
var keep [][]byte
