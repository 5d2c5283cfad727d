// Command bench measures cicdstatemgr for Tekton on the local control plane
// of hack/ (its own stack: CLUSTER_DIR=.cache/bench-cluster, ports of its own)
// and compares it with a trivial custom task controller (bench/baseline)
// measured in the same run. Start it with `make bench` (hack/bench.sh brings
// the stack up, runs this program and takes the stack down); BENCH_QUICK=1
// runs fewer iterations.
//
// Figures: op latency (CustomRun created -> Succeeded seen by a watch) per op
// and number in flight; throughput with 100 in flight at 1, 2 and 4 worker
// threads; a pipeline of 10 sequential ops; set/get on the engine alone for
// 1 KB, 100 KB and 1 MB states; the controller's CPU per CustomRun and RSS
// after 5,000 CustomRuns against the baseline's, a hot context, one and two
// replicas (scaleout.go); the CLI's `--get` (from `go test -bench` in this
// directory, run by hack/bench.sh); set alone and beside hostile CustomRuns
// (hostile.go). Results go to bench/results.md and bench/latency.png.
// BENCH_ONLY=hostile, scaleout, cost (the CPU and memory row of scaleout) or
// cloudevents runs the warm-up and that part only.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sizes of a run: quick (BENCH_QUICK=1) or full.
type sizes struct {
	latencyRuns map[int]int // in flight -> CustomRuns per op
	throughput  int         // CustomRuns per thread setting
	pipelines   int         // PipelineRuns of each kind
	engineIters int         // set+get pairs per state size
	rssRuns     int         // CustomRuns before the RSS reading
	rounds      int         // of each op at 10 and 100 in flight
	hostileRuns int         // set CustomRuns alone, beside the hostile load, and alone again
	hotRounds   int         // rounds of the hot-context row (scaleout.go)
}

var quickSizes = sizes{
	latencyRuns: map[int]int{1: 20, 10: 60, 100: 200},
	throughput:  200, pipelines: 2, engineIters: 100, rssRuns: 600, rounds: 1, hostileRuns: 40, hotRounds: 3,
}

var fullSizes = sizes{
	latencyRuns: map[int]int{1: 100, 10: 300, 100: 1000},
	throughput:  1000, pipelines: 5, engineIters: 300, rssRuns: 5000, rounds: 2, hostileRuns: 100, hotRounds: 10,
}

var inFlight = []int{1, 10, 100}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("bench: ")
	var (
		outDir   = flag.String("out", "bench", "directory of results.md and latency.png")
		cliFile  = flag.String("cli-bench", "", "output of `go test -bench 'CLIGet|ProcessStart' ./bench` to include")
		baseline = flag.String("baseline-bin", "", "the bench/baseline controller binary (required)")
	)
	flag.Parse()
	quick := os.Getenv("BENCH_QUICK") != "" && os.Getenv("BENCH_QUICK") != "0"
	only := os.Getenv("BENCH_ONLY")
	if only != "" && only != "hostile" && only != "scaleout" && only != "cost" && only != "cloudevents" {
		log.Fatalf("BENCH_ONLY=%q: the parts that run alone are hostile, scaleout, cost and cloudevents", only)
	}
	sz := fullSizes
	if quick {
		sz = quickSizes
	}
	env, err := loadEnv()
	if err != nil {
		log.Fatal(err)
	}
	if *baseline == "" {
		log.Fatal("-baseline-bin is required")
	}
	env.baselineBin = *baseline

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	load, err := hostileKinds(os.Getenv("BENCH_HOSTILE"))
	if err != nil {
		log.Fatal(err)
	}
	rep := &report{quick: quick, only: only, load: load, started: time.Now(), sizes: sz}
	if *cliFile != "" {
		rep.cli, err = parseGoBench(*cliFile)
		if err != nil {
			log.Printf("CLI benchmark output unreadable (%v): the CLI figures are left out", err)
		}
	}
	if err := run(ctx, env, sz, rep); err != nil {
		rep.failure = err.Error()
		log.Printf("FAILED: %v", err)
	}
	rep.finished = time.Now()
	md := rep.markdown(env)
	if err := os.WriteFile(filepath.Join(*outDir, "results.md"), []byte(md), 0o644); err != nil {
		log.Fatal(err)
	}
	if len(rep.latency) > 0 {
		if err := writePlot(filepath.Join(*outDir, "latency.png"), rep); err != nil {
			log.Printf("plot: %v", err)
		}
	}
	fmt.Println(md)
	log.Printf("wrote the results to %s", *outDir)
	if rep.failure != "" {
		os.Exit(1)
	}
}

// run measures everything, filling rep as it goes (a failure keeps what was
// measured before it).
func run(ctx context.Context, env *benchEnv, sz sizes, rep *report) error {
	b, err := newCluster(ctx, env)
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.enableProfiling(ctx); err != nil { // before the controllers (re)start: read at start
		return err
	}
	if err := b.startBaseline(ctx); err != nil {
		return err
	}
	if err := b.warmUp(ctx); err != nil {
		return err
	}
	if rep.only == "hostile" {
		return b.hostile(ctx, rep.load, sz.hostileRuns, rep)
	}
	if rep.only == "scaleout" {
		return b.scaleout(ctx, sz, rep)
	}
	if rep.only == "cost" { // the first scale-out row alone: CPU and memory
		rep.scale = &scaleResult{}
		return b.cost(ctx, sz.rssRuns, rep)
	}
	if rep.only == "cloudevents" {
		return b.deadSink(ctx, sz.hostileRuns, rep)
	}

	// 1. op latency at 1, 10 and 100 in flight, ours and the baseline's: at 1
	// in flight the ops take turns run by run; at 10 and 100 each op runs on
	// its own, in rounds (the ops in turn) so that drift hits them alike.
	one, err := b.interleaved(ctx, "lat-c1", allOps, sz.latencyRuns[1])
	for _, o := range allOps {
		rep.latency = append(rep.latency, one[o])
		log.Printf("%-8s %3d in flight: %s", o, 1, one[o].summary())
	}
	if err != nil {
		return err
	}
	for _, n := range inFlight[1:] {
		merged := map[op]*phaseResult{}
		for r := 0; r < sz.rounds; r++ {
			for _, o := range allOps {
				ph, err := b.phase(ctx, fmt.Sprintf("lat-%s-c%d-r%d", o, n, r), o, n, sz.latencyRuns[n]/sz.rounds)
				if m := merged[o]; m != nil {
					m.merge(ph)
				} else {
					merged[o] = ph
				}
				if err != nil {
					return err
				}
			}
		}
		for _, o := range allOps {
			rep.latency = append(rep.latency, merged[o])
			log.Printf("%-8s %3d in flight: %s", o, n, merged[o].summary())
		}
	}

	// 2. throughput at 100 in flight with 1, 2 and 4 threads, then back to the default
	for _, threads := range []int{1, 2, 4} {
		if err := b.restartController(ctx, fmt.Sprintf("--threads=%d", threads)); err != nil {
			return err
		}
		ph, err := b.phase(ctx, fmt.Sprintf("tput-t%d", threads), opSet, 100, sz.throughput)
		if err != nil {
			return err
		}
		ph.threads = threads
		rep.throughput = append(rep.throughput, ph)
		log.Printf("throughput, %d threads: %s", threads, ph.summary())
	}
	if err := b.restartController(ctx, ""); err != nil {
		return err
	}

	// 3. CPU and memory against the baseline's over rssRuns CustomRuns each, a hot
	// context, one and two replicas (scaleout.go)
	if err := b.scaleout(ctx, sz, rep); err != nil {
		return err
	}

	// 4. a pipeline of 10 sequential ops, ours and the baseline's
	if err := b.pipelines(ctx, sz.pipelines, rep); err != nil {
		return err
	}

	// 5. the engine alone against the bench Redis
	eng, err := engineBench(ctx, env, sz.engineIters)
	if err != nil {
		return err
	}
	rep.engine = eng

	// 6. set alone, beside hostile CustomRuns and slow clients, and alone again
	if err := b.hostile(ctx, rep.load, sz.hostileRuns, rep); err != nil {
		return err
	}

	// 7. set with no CloudEvents sink, with a dead one, and with none again (cloudevents.go)
	return b.deadSink(ctx, sz.hostileRuns, rep)
}

// benchEnv is what hack/bench.sh (via hack/stack.sh) tells us.
type benchEnv struct {
	root, clusterDir, kubeconfig, redisAddr, echoPort, baselineBin string
	baselineProbes, baselineProfiling                              string
	controllerAddr                                                 string // host:port of the Slack endpoints (--http-addr)
}

func loadEnv() (*benchEnv, error) {
	wd, _ := os.Getwd()
	e := &benchEnv{root: wd, clusterDir: os.Getenv("CLUSTER_DIR"), echoPort: os.Getenv("ECHO_PORT"),
		baselineProbes: getenv("BASELINE_PROBES_PORT", "18390"), baselineProfiling: getenv("BASELINE_PROFILING_PORT", "18391")}
	if e.clusterDir == "" || e.echoPort == "" {
		return nil, fmt.Errorf("CLUSTER_DIR and ECHO_PORT must be set: run me through hack/bench.sh")
	}
	if _, err := strconv.Atoi(e.echoPort); err != nil {
		return nil, fmt.Errorf("ECHO_PORT %q: %v", e.echoPort, err)
	}
	kv, err := readEnvFile(filepath.Join(e.clusterDir, "stack.env"))
	if err != nil {
		return nil, err
	}
	e.kubeconfig, e.redisAddr = kv["KUBECONFIG"], kv["CICDSTATEMGR_REDIS_ADDR"]
	e.controllerAddr = strings.TrimPrefix(kv["CICDSTATEMGR_CONTROLLER_URL"], "http://")
	if e.kubeconfig == "" || e.redisAddr == "" || e.controllerAddr == "" {
		return nil, fmt.Errorf("stack.env lacks KUBECONFIG, CICDSTATEMGR_REDIS_ADDR or CICDSTATEMGR_CONTROLLER_URL")
	}
	return e, nil
}

// readEnvFile reads KEY=value lines.
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			out[k] = v
		}
	}
	return out, nil
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
