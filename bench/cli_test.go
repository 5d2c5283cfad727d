package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// The CLI benchmarks: one `cicdstatemgr --get` end to end (a fresh process,
// as a pipeline step runs it) against a real Redis, and the start of a
// trivial process (/bin/true) and of a Go hello world (built into a temporary
// directory, never committed) as the baselines of the same run.
//
//	go test -run '^$' -bench 'CLIGet|ProcessStart' ./bench
//
// Target: under 15 ms per --get (the Python original takes ~400 ms).
//
// The same run also starts the CLI floors (testdata/clifloor, built into the
// same temporary directory): programs that get the same value with less and
// less of what the CLI links, from the project's config and store packages down
// to a hand-written Redis client on the standard library's net. They measure
// what a --get could cost if it were a separate, smaller program, for the
// decision README.md's Benchmarks section describes ("CLI start-up").

var (
	buildOnce sync.Once
	cliBin    string
	helloBin  string
	floorBins map[string]string // floor name: binary
	buildErr  error
	buildDir  string
)

// cliFloors are the programs of testdata/clifloor, from the heaviest: each is
// reported as <name>-x-hello.
var cliFloors = []string{"store", "goredis", "yaml", "net"}

// quietLogger drops go-redis's log of failed dials while the server starts
// (it would land in the middle of the benchmark lines).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildCLI builds cmd/cicdstatemgr once per test binary.
func buildCLI(b *testing.B) string {
	b.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "bench-cli-"); buildErr != nil {
			return
		}
		cliBin = filepath.Join(buildDir, "cicdstatemgr")
		// static, as `make build` makes it
		build := exec.Command("go", "build", "-o", cliBin, "github.com/cicdstatemgr/cicdstatemgr/cmd/cicdstatemgr")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := build.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/cicdstatemgr: %v\n%s", err, out)
			return
		}
		if helloBin, buildErr = buildHello(buildDir); buildErr != nil {
			return
		}
		floorBins, buildErr = buildFloors(buildDir)
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return cliBin
}

func BenchmarkCLIGet(b *testing.B) {
	bin := buildCLI(b)
	srv := redistest.Start(b)
	dir := b.TempDir()
	host, port, _ := strings.Cut(srv.Addr, ":")
	files := map[string]string{
		"config.yaml":  fmt.Sprintf("cicdstatemgr:\n  datasources:\n    redis: {host: %s, port: %s, isPrimary: true}\n", host, port),
		"secrets.yaml": "cicdstatemgr:\n  datasources:\n    redis: {username: cicdstatemgr, password: \"123$aBcZ\"}\n",
		"app.yaml":     "cicd-contexts:\n  stage:\n    channel: bench\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--config", "config.yaml", "--secrets", "secrets.yaml"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("%v: %s", err, ee.Stderr)
		}
		return string(out), err
	}
	if _, err := cli("--init-new", "bench-ctx", "--init-app-config-file", "app.yaml", "--set", "state.key1=value1"); err != nil {
		b.Fatal(err)
	}
	floor, err := floorCommands(srv, dir, "bench-ctx", "state.key1")
	if err != nil {
		b.Fatal(err)
	}
	floorTotal := map[string]time.Duration{}
	var trueTotal, helloTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// /bin/true and a Go hello world interleaved, outside the timer: the
		// same-run baselines
		b.StopTimer()
		t0 := time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
		trueTotal += time.Since(t0)
		t0 = time.Now()
		if out, err := exec.Command(helloBin).Output(); err != nil || string(out) != "hello, world\n" {
			b.Fatalf("hello world: %q %v", out, err)
		}
		helloTotal += time.Since(t0)
		for _, name := range cliFloors {
			t0 = time.Now()
			out, err := floor[name]().Output()
			if err != nil || strings.TrimSpace(string(out)) != "value1" {
				b.Fatalf("CLI floor %s: %q %v", name, out, err)
			}
			floorTotal[name] += time.Since(t0)
		}
		b.StartTimer()
		out, err := cli("--id", "bench-ctx", "--get", "state.key1")
		if err != nil || strings.TrimSpace(out) != "value1" {
			b.Fatalf("--get: %q, %v", out, err)
		}
	}
	b.StopTimer()
	perOp := b.Elapsed() / time.Duration(b.N)
	perTrue := trueTotal / time.Duration(b.N)
	b.ReportMetric(float64(perOp)/1e6, "ms/op")
	b.ReportMetric(float64(perTrue)/1e6, "true-ms/op")
	if perTrue > 0 {
		b.ReportMetric(float64(perOp)/float64(perTrue), "x-true")
	}
	perHello := helloTotal / time.Duration(b.N)
	b.ReportMetric(float64(perHello)/1e6, "hello-ms/op")
	if perHello > 0 {
		b.ReportMetric(float64(perOp)/float64(perHello), "x-hello")
		for _, name := range cliFloors {
			b.ReportMetric(float64(floorTotal[name])/float64(b.N)/float64(perHello), name+"-x-hello")
		}
	}
}

// buildFloors builds the CLI floors (testdata/clifloor) static, as the CLI.
func buildFloors(dir string) (map[string]string, error) {
	bins := map[string]string{}
	for _, name := range cliFloors {
		bin := filepath.Join(dir, "floor-"+name)
		build := exec.Command("go", "build", "-o", bin, "github.com/cicdstatemgr/cicdstatemgr/bench/testdata/clifloor/"+name)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build testdata/clifloor/%s: %v\n%s", name, err, out)
		}
		bins[name] = bin
	}
	return bins, nil
}

// floorCommands are the commands of the CLI floors that get path of context id
// (namespace default) with the config files in dir, as the CLI does: the net
// floor, which parses no YAML, is given the address and credentials, and the
// floors with their own Redis client the key and hash fields (docs/design.md,
// "Redis keys") that the CLI's HMGET reads.
func floorCommands(srv *redistest.Server, dir, id, path string) (map[string]func() *exec.Cmd, error) {
	st, err := store.New(store.Options{Addr: srv.Addr}) // only to name the key: it never connects
	if err != nil {
		return nil, err
	}
	key := st.DocKey(store.Ref("default", id))
	st.Close()
	fields := []string{"order", "t:macros", "t:state", "s:" + strings.TrimPrefix(path, "state.")}
	args := map[string][]string{
		"store":   {"default", id, path},
		"goredis": append([]string{key}, fields...),
		"yaml":    append([]string{key}, fields...),
		"net":     append([]string{srv.Addr, srv.Username, srv.Password, key}, fields...),
	}
	cmds := map[string]func() *exec.Cmd{}
	for _, name := range cliFloors {
		argv := append([]string{"config.yaml", "secrets.yaml"}, args[name]...)
		bin := floorBins[name]
		cmds[name] = func() *exec.Cmd {
			cmd := exec.Command(bin, argv...)
			cmd.Dir = dir
			return cmd
		}
	}
	return cmds, nil
}

// buildHello builds a Go hello world (package main, fmt.Println) in dir: the
// floor of any Go process start on this machine, with the same toolchain.
func buildHello(dir string) (string, error) {
	src := filepath.Join(dir, "hello")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	files := map[string]string{
		"go.mod":  "module hello\n\ngo 1.22\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello, world\") }\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(dir, "hello-world")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build hello world: %v\n%s", err, out)
	}
	return bin, nil
}

func BenchmarkProcessStart(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed()/time.Duration(b.N))/1e6, "ms/op")
}
