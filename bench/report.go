package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// report collects every figure of a run.
type report struct {
	quick             bool
	only              string      // BENCH_ONLY: "" (everything) or "hostile"
	load              hostileLoad // of the hostile-neighbour row (BENCH_HOSTILE)
	started, finished time.Time
	sizes             sizes
	latency           []*phaseResult
	throughput        []*phaseResult
	rss               *rssResult
	pipelines         []*pipelineResult
	engine            []*engineResult
	cli               []goBench
	hostile           *hostileResult
	scale             *scaleResult // scaleout.go
	sink              *sinkResult  // cloudevents.go
	failure           string
}

// goBench is one line of `go test -bench` output.
type goBench struct {
	name    string
	n       int
	metrics map[string]float64 // unit -> value
}

func parseGoBench(path string) ([]goBench, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []goBench
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		n, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		b := goBench{name: fields[0], n: n, metrics: map[string]float64{}}
		if i := strings.LastIndex(b.name, "-"); i > 0 {
			b.name = b.name[:i] // the -GOMAXPROCS suffix
		}
		for i := 2; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				b.metrics[fields[i+1]] = v
			}
		}
		out = append(out, b)
	}
	return out, sc.Err()
}

func (r *report) cliBench(name string) *goBench {
	for i := range r.cli {
		if r.cli[i].name == name {
			return &r.cli[i]
		}
	}
	return nil
}

func (r *report) phase(o op, inFlight int) *phaseResult {
	for _, p := range r.latency {
		if p.op == o && p.inFlight == inFlight {
			return p
		}
	}
	return nil
}

func machine() string {
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%d", &kb)
		mem = fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
	}
	kernel, _ := exec.Command("uname", "-sr").Output()
	return fmt.Sprintf("%s, %d cores, %s, %s", cpu, runtime.NumCPU(), mem, strings.TrimSpace(string(kernel)))
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, _ := exec.Command("git", "status", "--porcelain").Output(); len(st) > 0 {
		c += " + uncommitted changes"
	}
	return c
}

func redisVersion() string {
	out, err := exec.Command("redis-server", "--version").Output()
	if err != nil {
		return "?"
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v
		}
	}
	return "?"
}

func x(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func (r *report) markdown(env *benchEnv) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	mode := "full"
	if r.quick {
		mode = "quick (BENCH_QUICK=1)"
	}
	if r.only != "" {
		mode += fmt.Sprintf(", only the %s row (BENCH_ONLY=%s)", r.only, r.only)
	}
	w("# cicdstatemgr benchmarks\n\n")
	w("- Machine: %s\n", machine())
	took := fmt.Sprintf("the measurements took %s", r.finished.Sub(r.started).Round(time.Second))
	if sec, err := strconv.ParseInt(os.Getenv("BENCH_STARTED"), 10, 64); err == nil {
		took += fmt.Sprintf(", the whole run (CLI benchmarks, stack up) %s", r.finished.Sub(time.Unix(sec, 0)).Round(time.Second))
	}
	w("- Date: %s; %s; mode: %s\n", r.started.Format("2006-01-02 15:04 MST"), took, mode)
	w("- Software: %s, Redis %s, commit %s\n", runtime.Version(), redisVersion(), commit())
	w("- Reproduce: `make bench` (full) or `BENCH_QUICK=1 make bench` (quick). It brings up its own stack " +
		"(`CLUSTER_DIR=.cache/bench-cluster`, etcd 43790/43800, apiserver 36443, Redis 16381, controller 18095/18096, " +
		"echo 18097) and takes it down at the end.\n")
	w("- Everything (apiserver, etcd, Tekton controller, our controller, the baseline controller, Redis and the load generator) " +
		"shares the same cores: figures are noisy, ratios to the baseline measured in the same run are the meaningful part.\n")
	if r.failure != "" {
		w("\n**The run failed before the end: %s** (figures below are what was measured until then)\n", r.failure)
	}

	if len(r.latency) > 0 {
		w("\n## Op latency: CustomRun created → Succeeded seen by a watch\n\n")
		w("Each of *in flight* workers creates a CustomRun and waits for it to finish before creating the next. "+
			"At 1 in flight the five ops take turns run by run; at 10 and 100 each op runs alone, in %d round(s) with the ops in turn. "+
			"set, get and notify (`handle-event` of an event whose handler posts to the bench's echo server) work on 100 contexts "+
			"(one per worker), init creates a new context each time. "+
			"`baseline` is bench/baseline's Copy (same sharedmain, generated reconciler, threads and client limits; no Redis, no event). "+
			"Ratios are to the baseline at the same number in flight; runs/s is runs ÷ wall time.\n\n", r.sizes.rounds)
		w("| op | in flight | runs | p50 | p95 | p99 | runs/s | p50 ÷ baseline | p99 ÷ baseline | failed |\n")
		w("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, p := range r.latency {
			s := summarize(p.lat)
			rp50, rp99 := "", ""
			if base := r.phase(opCopy, p.inFlight); base != nil && p.op != opCopy {
				bs := summarize(base.lat)
				rp50, rp99 = x(ratio(s.p50, bs.p50)), x(ratio(s.p99, bs.p99))
			}
			w("| %s | %d | %d | %s | %s | %s | %.1f | %s | %s | %d |\n", p.op, p.inFlight, s.n, ms(s.p50), ms(s.p95), ms(s.p99),
				p.perSecond(), rp50, rp99, p.failed+p.timedOut+p.errors)
		}
	}

	if len(r.latency) > 0 {
		w("\n![latency](latency.png)\n")
	}

	if len(r.throughput) > 0 {
		w("\n## Throughput: CustomRuns completed per second, 100 in flight (op set)\n\n")
		w("Our controller restarted with `CONTROLLER_ARGS=--threads=N`; the default is 8. runs/s = runs ÷ wall time of the phase.\n\n")
		w("| controller | threads | runs | runs/s | ÷ baseline | p50 | p99 |\n|---|--:|--:|--:|--:|--:|--:|\n")
		base := r.phase(opCopy, 100)
		row := func(who string, threads int, p *phaseResult) {
			s := summarize(p.lat)
			rb := "-"
			if base != nil && base.perSecond() > 0 {
				rb = x(p.perSecond() / base.perSecond())
			}
			w("| %s | %d | %d | %.1f | %s | %s | %s |\n", who, threads, s.n, p.perSecond(), rb, ms(s.p50), ms(s.p99))
		}
		for _, p := range r.throughput {
			row("cicdstatemgr", p.threads, p)
		}
		if p := r.phase(opSet, 100); p != nil {
			row("cicdstatemgr (from the latency table)", 8, p)
		}
		if base != nil {
			row("baseline", 8, base)
		}
	}

	if len(r.pipelines) == 2 {
		w("\n## A pipeline of %d sequential tasks: PipelineRun created → Succeeded\n\n", pipelineSteps)
		w("Ours: init, 8 sets (appending to a list), get. Baseline: 10 Copy tasks, each copying the previous result. One PipelineRun at a time.\n\n")
		w("| pipeline | runs | p50 | max | p50 per task | p50 ÷ baseline |\n|---|--:|--:|--:|--:|--:|\n")
		bs := summarize(r.pipelines[1].lat)
		for _, p := range r.pipelines {
			s := summarize(p.lat)
			w("| %s | %d | %s | %s | %s | %s |\n", p.kind, s.n, ms(s.p50), ms(s.max), ms(s.p50/pipelineSteps), x(ratio(s.p50, bs.p50)))
		}
	}

	if len(r.engine) > 0 {
		w("\n## The engine alone (pkg/engine against the bench Redis, no Kubernetes)\n\n")
		w("A set of state.key1, then a get of it, on a context whose state holds the given size (state.big: many ~100-byte entries); "+
			"%d of each per size and variant, sizes in turn. *op key*: as the controller calls the engine (the CustomRun's UID makes "+
			"the op exactly-once); *no key*: as the CLI does.\n\n", len(r.engine[0].set))
		w("| state | set p50, op key | get p50, op key | set p50, no key | get p50, no key | set+get ÷ 1 KB, op key | set+get ÷ 1 KB, no key |\n")
		w("|---|--:|--:|--:|--:|--:|--:|\n")
		e0 := r.engine[0]
		for _, e := range r.engine {
			w("| %s | %s | %s | %s | %s | %s | %s |\n", e.size, us(p50(e.set)), us(p50(e.get)), us(p50(e.setNoKey)), us(p50(e.getNoKey)),
				x(ratio(p50(e.set)+p50(e.get), p50(e0.set)+p50(e0.get))), x(ratio(p50(e.setNoKey)+p50(e.getNoKey), p50(e0.setNoKey)+p50(e0.getNoKey))))
		}
	}

	if r.scale != nil {
		r.scaleSection(w)
	}

	if r.rss != nil && r.scale == nil {
		m := r.rss
		w("\n## Memory of our controller (VmRSS of /proc/<pid>/status)\n\n")
		w("%d CustomRuns (set and get, 100 in flight, %s), kept until the end, then deleted; RSS read %s after the deletion.\n\n",
			m.runs, m.phase.summary(), m.settle)
		w("| before | with the %d runs | after deleting them | peak (VmHWM) |\n|--:|--:|--:|--:|\n", m.runs)
		w("| %s | %s | %s | %s |\n", mib(m.before), mib(m.full), mib(m.after), mib(m.peak))
	}

	if len(r.cli) > 0 {
		w("\n## CLI: one `cicdstatemgr --get` invocation, process start included\n\n")
		w("`go test -run '^$' -bench 'CLIGet|ProcessStart' ./bench` against a real Redis (internal/redistest); " +
			"`BenchmarkProcessStart` execs /bin/true. The Python original takes ~400 ms.\n\n")
		w("`BenchmarkCLIGet` also starts a Go hello world (`fmt.Println`, built into a temporary directory) before each `--get`, " +
			"outside the timer: *÷ Go hello* is `--get` against that process start in the same run.\n\n")
		w("| benchmark | runs | ms/op | ÷ /bin/true | Go hello ms/op | ÷ Go hello |\n|---|--:|--:|--:|--:|--:|\n")
		trueMs := 0.0
		if t := r.cliBench("BenchmarkProcessStart"); t != nil {
			trueMs = t.metrics["ns/op"] / 1e6
		}
		for _, c := range r.cli {
			v := c.metrics["ns/op"] / 1e6
			rt := "-"
			if trueMs > 0 {
				rt = x(v / trueMs)
			}
			hello, rh := "", ""
			if h, ok := c.metrics["hello-ms/op"]; ok && h > 0 {
				hello, rh = fmt.Sprintf("%.2f", h), x(v/h)
			}
			w("| %s | %d | %.2f | %s | %s | %s |\n", c.name, c.n, v, rt, hello, rh)
		}
		if c := r.cliBench("BenchmarkCLIGet"); c != nil {
			r.cliFloorsSection(w, c)
		}
	}

	if h := r.hostile; h != nil && h.before != nil {
		r.hostileSection(w, h)
	}
	r.sinkSection(w)

	w("\n## Targets\n\n| target | measured | |\n|---|---|---|\n")
	if base := r.phase(opCopy, 1); base != nil {
		bs := summarize(base.lat)
		for _, o := range []op{opSet, opGet, opInit, opNotify} {
			if p := r.phase(o, 1); p != nil {
				s := summarize(p.lat)
				rt := ratio(s.p50, bs.p50)
				w("| %s at 1 in flight: p50 ≤ 1.3× baseline and < 25 ms | %s, %s the baseline's %s | %s |\n", o, ms(s.p50), x(rt), ms(bs.p50),
					met(rt <= 1.3 && s.p50 < 25*time.Millisecond))
			}
		}
	}
	if p := r.phase(opSet, 100); p != nil {
		best := p.perSecond()
		w("| ≥ 100 CustomRuns/s with 100 in flight (set, default 8 threads) | %.1f/s | %s |\n", best, met(best >= 100))
	}
	if len(r.engine) == 3 {
		a, c := r.engine[0], r.engine[2]
		rk := ratio(p50(c.set)+p50(c.get), p50(a.set)+p50(a.get))
		rn := ratio(p50(c.setNoKey)+p50(c.getNoKey), p50(a.setNoKey)+p50(a.getNoKey))
		w("| engine: 1 MB state ≤ 3× slower than 1 KB (set+get p50), as the controller calls it (op key) | %s | %s |\n", x(rk), met(rk <= 3))
		w("| the same without op key (as the CLI calls it) | %s | %s |\n", x(rn), met(rn <= 3))
	}
	if m := r.rss; m != nil {
		w("| controller RSS < 80 MiB after %d CustomRuns (deleted) | %s (before %s, peak %s) | %s |\n", m.runs, mib(m.after), mib(m.before), mib(m.peak),
			met(m.after < 80<<10))
	}
	if c := r.cliBench("BenchmarkCLIGet"); c != nil {
		v := c.metrics["ns/op"] / 1e6
		w("| CLI `--get` < 15 ms end to end | %.2f ms | %s |\n", v, met(v < 15))
		if h := c.metrics["hello-ms/op"]; h > 0 {
			w("| CLI `--get` ≤ 1.5× a Go hello world's process start (same run) | %.2f ms against %.2f ms: %s | %s |\n", v, h, x(v/h), met(v/h <= 1.5))
		}
	}
	r.scaleTargets(w)
	r.sinkTarget(w)
	if h := r.hostile; h != nil && h.beside != nil && h.after != nil {
		alone, beside := h.alone(), summarize(h.beside.lat)
		rt := ratio(beside.p50, alone.p50)
		w("| set beside hostile CustomRuns: p50 ≤ 1.3× set alone (same run) | %s beside, %s alone: %s (p95 %s) | %s |\n",
			ms(beside.p50), ms(alone.p50), x(rt), x(ratio(beside.p95, alone.p95)), met(rt <= 1.3))
	}
	if !r.quick {
		return b.String()
	}
	if r.only == "scaleout" || r.only == "cost" {
		w("\nQuick mode: %d CustomRuns per controller for CPU and memory (5,000 in a full run), %d hot-context rounds, "+
			"%d runs per replica phase, %d CLI runs.\n", r.sizes.rssRuns, r.sizes.hotRounds, max(r.sizes.throughput, 600), 100)
		return b.String()
	}
	if r.only != "" {
		w("\nQuick mode: %d set runs in each of the three parts of the hostile-neighbour row.\n", r.sizes.hostileRuns)
		return b.String()
	}
	w("\nQuick mode: fewer runs (%d/%d/%d per op at 1/10/100 in flight, %d for throughput, %d before the RSS reading, %d per part of the "+
		"hostile-neighbour row): the tails (p99) rest on few samples.\n",
		r.sizes.latencyRuns[1], r.sizes.latencyRuns[10], r.sizes.latencyRuns[100], r.sizes.throughput, r.sizes.rssRuns, r.sizes.hostileRuns)
	return b.String()
}

func p50(d []time.Duration) time.Duration { return summarize(d).p50 }

func mib(kib int64) string {
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// alone is set alone, before and after the hostile load together.
func (h *hostileResult) alone() stats {
	return summarize(append(append([]time.Duration(nil), h.before.lat...), h.after.lat...))
}

// hostileSection writes the hostile-neighbour table and what the load was.
func (r *report) hostileSection(w func(string, ...any), h *hostileResult) {
	w("\n## Hostile neighbours: set latency alone and beside hostile CustomRuns\n\n")
	w("One `set` CustomRun at a time (closed loop, namespace `%s`), %d runs alone, then %d beside the hostile load below, then %d alone again "+
		"after the load is stopped and its CustomRuns deleted. Ratios are to *alone* (the runs before and after, together); all measured in this run.\n\n",
		namespace, h.before.n(), r.sizes.hostileRuns, r.sizes.hostileRuns)
	w("CPU columns: the CPU time each process used during the part ÷ its wall time, in cores (1.00: one core busy all along); "+
		"*machine*: all %d cores together, other people's work included.\n\n", runtime.NumCPU())
	w("| set, 1 in flight | runs | p50 | p95 | p99 | max | p50 ÷ alone | p95 ÷ alone | failed | CPU: our controller | kube-apiserver | etcd | machine |\n")
	w("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	var alone stats
	if h.after != nil {
		alone = h.alone()
	}
	row := func(what string, s stats, bad int, cpu map[string]float64) {
		cores := func(k string) string {
			if v, ok := cpu[k]; ok {
				return fmt.Sprintf("%.2f", v)
			}
			return ""
		}
		w("| %s | %d | %s | %s | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n", what, s.n, ms(s.p50), ms(s.p95), ms(s.p99), ms(s.max),
			x(ratio(s.p50, alone.p50)), x(ratio(s.p95, alone.p95)), bad,
			cores("cicdstatemgr-controller"), cores("kube-apiserver"), cores("etcd"), cores(machineCPU))
	}
	for i, p := range []struct {
		what string
		ph   *phaseResult
	}{{"alone, before", h.before}, {"**beside the hostile load**", h.beside}, {"alone, after", h.after}} {
		if p.ph != nil {
			row(p.what, summarize(p.ph.lat), p.ph.failed+p.ph.timedOut+p.ph.errors, h.cpu[i])
		}
	}
	if h.after != nil {
		row("alone, before and after", alone, 0, nil)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	bl := summarize(h.bombLat)
	sl := summarize(h.slowLife)
	w("\nThe hostile load, in namespace `%s`, started before the measured window and kept going until its end (%s in all); "+
		"each worker starts its next CustomRun or connection when its last one is over, so what is in flight stays bounded:\n\n",
		hostileNS, h.loadTime.Round(100*time.Millisecond))
	if h.load.bombs > 0 {
		h.bombLine(w, bl)
	}
	if h.load.hanging > 0 {
		h.hangLine(w)
	}
	if h.load.slowClients > 0 {
		h.slowLine(w, sl)
	}
	if h.notDone > 0 {
		w("- %d hostile CustomRuns were not done within %s.\n", h.notDone, hostileWait)
	}
	if h.createErrors > 0 {
		w("- %d hostile CustomRuns could not be created (the first: %s).\n", h.createErrors, h.firstErr)
	}
	restarted := "no"
	if h.restarted {
		restarted = "**yes**"
	}
	w("\nOur controller during the load: peak VmRSS (sampled every 250 ms) %s; restarted: %s.\n", mib(h.rssPeak), restarted)
}

func (h *hostileResult) bombLine(w func(string, ...any), bl stats) {
	w("- **%d render bombs in flight**: `get` CustomRuns of a context whose state holds `{{ \"x\"|ljust:200000000|length }}`, "+
		"`{{ f(40) }}` (a macro calling itself twice per level) and an expression nested 100,000 parentheses deep, in turn. "+
		"%d done during the load (%.1f/s; %s), p50 %s each from creation to done.\n", h.load.bombs, bl.n, perSec(bl.n, h.loadTime),
		counts(h.bombReasons), ms(bl.p50))
}

func (h *hostileResult) hangLine(w func(string, ...any)) {
	w("- **%d hanging handle-events in flight**: `handle-event` CustomRuns whose handler `respond`s to the bench echo server's `/slow`, "+
		"which answers only when the load stops. %d created; at most %d calls held at `/slow` at once (budgets.callsPerHost: 16); "+
		"%d done before the release (%s).\n", h.load.hanging, h.hangCreated, h.heldPeak, total(h.hangEnded), counts(h.hangEnded))
}

func (h *hostileResult) slowLine(w func(string, ...any), sl stats) {
	w("- **%d slow clients of the Slack port** (`--http-addr`, unauthenticated): half send a request's headers a byte a second, half send "+
		"well-formed but unverifiable Slack signature headers and then the body a byte a second; each opens its next connection %s after "+
		"its last one closed. %d connections (%.1f/s), p50 %s open (max %s); first thing the server sent: %s.\n",
		h.load.slowClients, slowReconnect, sl.n, perSec(sl.n, h.loadTime), ms(sl.p50), ms(sl.max), counts(h.slowOutcome))
}

// n is the number of runs measured.
func (p *phaseResult) n() int { return len(p.lat) }

// counts prints "a 3, b 1" (largest first).
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// cliFloorsDoc names each program of the CLI floors table, its metric in
// BenchmarkCLIGet, and what it links.
var cliFloorsDoc = []struct{ name, metric, links string }{
	{"the CLI", "x-hello", "`cicdstatemgr --get` (the CLI as built: engine, templates, HTTP, go-redis)"},
	{"store", "store-x-hello", "the project's pkg/config and pkg/store, no engine (pkg/config links templates and net/http today)"},
	{"goredis", "goredis-x-hello", "yaml.v3 and go-redis only"},
	{"yaml", "yaml-x-hello", "yaml.v3 and a hand-written Redis client (HELLO, HMGET; no TLS, Sentinel or Cluster)"},
	{"net", "net-x-hello", "the hand-written client alone, the config files read but not parsed"},
}

// cliFloorsSection is the table of the CLI floors measured in the same run as
// --get: what a separate, smaller --get program could cost.
func (r *report) cliFloorsSection(w func(string, ...any), c *goBench) {
	if _, ok := c.metrics["net-x-hello"]; !ok {
		return
	}
	w("\nThe same run starts the CLI floors (`bench/testdata/clifloor`): programs that get the same value " +
		"with less of what the CLI links, each against the Go hello world.\n\n")
	w("| program | links | ÷ Go hello |\n|---|---|--:|\n")
	for _, f := range cliFloorsDoc {
		w("| %s | %s | %s |\n", f.name, f.links, x(c.metrics[f.metric]))
	}
}
