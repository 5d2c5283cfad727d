package main

// The scale-out rows (issue 13), each a ratio to something measured in the same
// run: our controller's CPU per CustomRun and its RSS after a burst against the
// baseline controller's over the same load (plus a heap profile and the Go
// runtime's accounting of both); 50 concurrent sets on one context against 50 on
// 50 contexts, with the optimistic transactions our store retried; and the
// throughput at 100 in flight with one and two controller replicas (leader
// election). BENCH_ONLY=scaleout runs the warm-up and these rows only.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// scaleResult is what the scale-out rows measured.
type scaleResult struct {
	cost     *costResult
	hot      *hotResult
	replicas []*replicaResult
}

// procMem is a process's memory as /proc/<pid>/status and the Go runtime (the
// MemStats of its heap profile, debug=1, after a GC) see it; bytes.
type procMem struct {
	rss, rssAnon, rssFile      int64 // VmRSS, RssAnon (heap, stacks, runtime), RssFile (the binary's mapped pages)
	heapInuse, heapIdle        int64 // spans in use; spans free but kept
	heapReleased, stack, other int64 // returned to the OS; goroutine stacks; runtime metadata (Sys - heap - stacks)
	top                        []string
}

// costResult is our controller and the baseline side by side over the same load.
type costResult struct {
	runs           int           // CustomRuns of each controller
	ours, base     time.Duration // CPU (utime+stime) during their own batches
	oursAll        time.Duration // CPU over the whole window (both loads: each sees the other's CustomRuns too)
	baseAll        time.Duration
	oursPh, basePh *phaseResult
	memOurs        procMem // after the runs were deleted, settle later
	memBase        procMem
	fullOurs       int64 // VmRSS with the runs still there
	fullBase       int64
	settle         time.Duration
	heapFile       string
	cpuOurs        cpuProfile // of the first set batch
	cpuBase        cpuProfile // of the first Copy batch
	cpuSeconds     int
}

// profileSeconds is the length of the CPU profile of a batch of n CustomRuns:
// within it at ~60 runs/s (10 s of a batch of 1,000), at least 2 s.
func profileSeconds(n int) int { return max(2, min(10, n/80)) }

// hotResult: 50 sets at once on one context against 50 on 50 contexts.
type hotResult struct {
	width              int
	rounds             int
	hot, spread        *phaseResult
	hotWall, sprWall   time.Duration // sum over the rounds, first create to last done
	hotRetries, sprRet float64       // cicdstatemgr_store_tx_retries_total during the bursts
}

// replicaResult is set throughput at 100 in flight with n replicas.
type replicaResult struct {
	replicas int
	buckets  string // who held the bucket Leases during the phase
	ph       *phaseResult
	base     *phaseResult // the baseline's, measured right before
}

// procCPU is utime+stime of pid (/proc/<pid>/stat, USER_HZ 100).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}

// statusKiB reads fields (VmRSS:, RssAnon:, ...) of /proc/<pid>/status in KiB.
func statusKiB(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.HasPrefix(k, "Rss") || k == "VmRSS" {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			out[k] = n
		}
	}
	return out, sc.Err()
}

// observabilityCM turns on knative's profiling server (PROFILING_PORT) of both
// controllers: it is off unless the ConfigMap says otherwise, and read at start.
const observabilityCM = "config-observability"

func (c *cluster) enableProfiling(ctx context.Context) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: observabilityCM, Namespace: "cicdstatemgr"},
		Data: map[string]string{"runtime-profiling": "enabled"}}
	cms := c.kube.CoreV1().ConfigMaps(cm.Namespace)
	_, err := cms.Create(ctx, cm, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	// the stack's own (config/304-config-observability.yaml): keep its other keys
	cur, err := cms.Get(ctx, observabilityCM, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if cur.Data == nil {
		cur.Data = map[string]string{}
	}
	cur.Data["runtime-profiling"] = "enabled"
	_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// profileMem reads pid's memory: /proc and, through the profiling port, the heap
// profile after a GC (its MemStats, and the top allocation sites with go tool
// pprof; the profile is kept at save when not empty).
func profileMem(ctx context.Context, pid int, port, save string) (procMem, error) {
	var m procMem
	st, err := statusKiB(pid)
	if err != nil {
		return m, err
	}
	m.rss, m.rssAnon, m.rssFile = st["VmRSS"]<<10, st["RssAnon"]<<10, st["RssFile"]<<10
	text, err := httpGet(ctx, "http://127.0.0.1:"+port+"/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return m, fmt.Errorf("heap profile on :%s (is %s enabled?): %w", port, observabilityCM, err)
	}
	// "# HeapInuse = 123", and "# Stack = 123 / 456" (in use / from the OS)
	ms := map[string][]int64{}
	for _, l := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(l, "# "), " = "); ok {
			for _, f := range strings.Split(v, " / ") {
				if n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64); err == nil {
					ms[k] = append(ms[k], n)
				}
			}
		}
	}
	first := func(k string, i int) int64 {
		if len(ms[k]) > i {
			return ms[k][i]
		}
		return 0
	}
	m.heapInuse, m.heapIdle, m.heapReleased, m.stack = first("HeapInuse", 0), first("HeapIdle", 0), first("HeapReleased", 0), first("Stack", 0)
	m.other = first("Sys", 0) - first("HeapSys", 0) - first("Stack", 1)
	if save == "" {
		return m, nil
	}
	proto, err := httpGet(ctx, "http://127.0.0.1:"+port+"/debug/pprof/heap")
	if err != nil {
		return m, err
	}
	if err := os.WriteFile(save, []byte(proto), 0o644); err != nil {
		return m, err
	}
	m.top, err = pprofTop(ctx, save, false, 8, "-sample_index=inuse_space")
	return m, err
}

// pprofTop is the table of `go tool pprof -top` of a saved profile, one
// "<value> <function>" per row, nodes at most: by flat value, or by
// cumulative value when cum is set.
func pprofTop(ctx context.Context, file string, cum bool, nodes int, flags ...string) ([]string, error) {
	args := append([]string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", nodes)}, flags...)
	col := 0 // flat
	if cum {
		args, col = append(args, "-cum"), 3
	}
	out, err := exec.CommandContext(ctx, "go", append(args, file)...).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof %s: %w", file, err)
	}
	var top []string
	inTable := false
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "flat") {
			inTable = true
			continue
		}
		if f := strings.Fields(l); inTable && len(f) >= 6 {
			top = append(top, fmt.Sprintf("%s %s", f[col], strings.Join(f[5:], " ")))
		}
	}
	return top, nil
}

// cpuProfile is a CPU profile of one controller over seconds of its own batch,
// saved at file, with its top functions by cumulative time.
type cpuProfile struct {
	file string
	top  []string
	err  error
}

// profileCPU starts a CPU profile of the process behind port's profiling
// server (seconds long) and returns a channel that gets it.
func profileCPU(ctx context.Context, port string, seconds int, save string) <-chan cpuProfile {
	ch := make(chan cpuProfile, 1)
	go func() {
		p := cpuProfile{file: save}
		var proto string
		proto, p.err = httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%s/debug/pprof/profile?seconds=%d", port, seconds))
		if p.err == nil {
			p.err = os.WriteFile(save, []byte(proto), 0o644)
		}
		if p.err == nil {
			p.top, p.err = pprofTop(ctx, save, true, 25)
		}
		ch <- p
	}()
	return ch
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// scaleout runs the scale-out rows.
func (c *cluster) scaleout(ctx context.Context, sz sizes, rep *report) error {
	rep.scale = &scaleResult{}
	if err := c.cost(ctx, sz.rssRuns, rep); err != nil {
		return err
	}
	if err := c.hotContext(ctx, sz.hotRounds, rep.scale); err != nil {
		return err
	}
	// at least 600 runs a phase: at ~60/s fewer are over in a few seconds
	return c.replicaThroughput(ctx, max(sz.throughput, 600), rep.scale)
}

// cost runs n CustomRuns through each controller, in batches that alternate
// (ours: set and get in turn; the baseline: Copy), 100 in flight, kept until
// the end; each controller's CPU is read around its own batches. Then the runs
// are deleted and, settle later, both memories are read. Our figures also fill
// the RSS row of the report (rep.rss).
func (c *cluster) cost(ctx context.Context, n int, rep *report) error {
	// restarted so that it reads config-observability (profiling) at start
	if err := c.restartController(ctx, ""); err != nil {
		return err
	}
	pid, err := c.controllerPID()
	if err != nil {
		return err
	}
	basePid := c.baseline.Process.Pid
	ourProfiling := getenv("PROFILING_PORT", "18392")
	r := &costResult{runs: n, settle: 15 * time.Second,
		oursPh: &phaseResult{name: "cost", op: opSet, inFlight: 100}, basePh: &phaseResult{name: "cost-base", op: opCopy, inFlight: 100}}
	rr := &rssResult{runs: n, settle: r.settle, phase: r.oursPh}
	if rr.before, _, err = memory(pid); err != nil {
		return err
	}
	batch := min(1000, max(n/3, 1))
	oursAll0, err1 := procCPU(pid)
	baseAll0, err2 := procCPU(basePid)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	start := time.Now()
	var names []string
	for done, k := 0, 0; done < n; k++ {
		m := min(batch, n-done)
		o := opSet
		if k%2 == 1 {
			o = opGet
		}
		for _, side := range []struct {
			o    op
			pid  int
			cpu  *time.Duration
			ph   *phaseResult
			port string
			prof *cpuProfile
		}{{o, pid, &r.ours, r.oursPh, ourProfiling, &r.cpuOurs}, {opCopy, basePid, &r.base, r.basePh, c.env.baselineProfiling, &r.cpuBase}} {
			name := fmt.Sprintf("cost-%s-%d", side.o, k)
			t0, err := procCPU(side.pid)
			if err != nil {
				return err
			}
			// the first batch of each (a set batch for ours): a CPU profile
			// of its first seconds, where the controller does nothing else
			var prof <-chan cpuProfile
			if k == 0 {
				r.cpuSeconds = profileSeconds(m)
				prof = profileCPU(ctx, side.port, profileSeconds(m), filepath.Join(c.env.clusterDir, "cpu-"+string(side.o)+".pb.gz"))
			}
			ph, err := c.runPhase(ctx, name, side.o, 100, m, true)
			if err != nil {
				return err
			}
			if prof != nil {
				*side.prof = <-prof
				if side.prof.err != nil {
					log.Printf("CPU profile of %s: %v", name, side.prof.err)
				}
			}
			t1, err := procCPU(side.pid)
			if err != nil {
				return err
			}
			*side.cpu += t1 - t0
			side.ph.merge(ph)
			names = append(names, name)
		}
		done += m
	}
	r.oursPh.wall = time.Since(start)
	r.basePh.wall = r.oursPh.wall
	oursAll1, _ := procCPU(pid)
	baseAll1, _ := procCPU(basePid)
	r.oursAll, r.baseAll = oursAll1-oursAll0, baseAll1-baseAll0
	if rr.full, _, err = memory(pid); err != nil {
		return err
	}
	r.fullOurs = rr.full << 10
	if full, _, err := memory(basePid); err == nil {
		r.fullBase = full << 10
	}
	log.Printf("cost: %d runs each; CPU ours %s, baseline %s (whole window: %s, %s)", n, r.ours, r.base, r.oursAll, r.baseAll)
	for _, name := range names {
		if err := c.deleteAll(ctx, name); err != nil {
			return err
		}
	}
	time.Sleep(r.settle)
	r.heapFile = filepath.Join(c.env.clusterDir, "heap-ours.pb.gz")
	// a heap profile that cannot be read leaves its columns empty, not the run failed
	if r.memOurs, err = profileMem(ctx, pid, ourProfiling, r.heapFile); err != nil {
		log.Printf("our controller's memory: %v", err)
		r.heapFile = ""
	}
	if r.memBase, err = profileMem(ctx, basePid, c.env.baselineProfiling, filepath.Join(c.env.clusterDir, "heap-baseline.pb.gz")); err != nil {
		log.Printf("the baseline's memory: %v", err)
	}
	// the reading after the GC of the heap profile: what the runtime keeps without garbage
	if rr.after, rr.peak, err = memory(pid); err != nil {
		return err
	}
	log.Printf("memory after deleting them: ours %s (anon %s, file %s), baseline %s (anon %s, file %s)",
		mib(r.memOurs.rss>>10), mib(r.memOurs.rssAnon>>10), mib(r.memOurs.rssFile>>10),
		mib(r.memBase.rss>>10), mib(r.memBase.rssAnon>>10), mib(r.memBase.rssFile>>10))
	rep.rss = rr
	rep.scale.cost = r
	return nil
}

// hotContext runs rounds of two bursts of 50 set CustomRuns created at once:
// spread (context w-i for run i) and hot (all on w-0), reading our store's
// retried transactions around each.
func (c *cluster) hotContext(ctx context.Context, rounds int, s *scaleResult) error {
	const width = 50
	h := &hotResult{width: width, rounds: rounds,
		hot: &phaseResult{name: "hot", op: opSet, inFlight: width}, spread: &phaseResult{name: "spread", op: opSet, inFlight: width}}
	for r := 0; r < rounds; r++ {
		for _, kind := range []string{"spread", "hot"} {
			before, err := c.txRetries(ctx)
			if err != nil {
				return err
			}
			name := fmt.Sprintf("%s-r%d", kind, r)
			ph, err := c.burst(ctx, name, width, func(i int) string {
				if kind == "hot" {
					return "w-0"
				}
				return fmt.Sprintf("w-%d", i)
			})
			if err != nil {
				return err
			}
			after, err := c.txRetries(ctx)
			if err != nil {
				return err
			}
			if kind == "hot" {
				h.hot.merge(ph)
				h.hotWall += ph.wall
				h.hotRetries += after - before
			} else {
				h.spread.merge(ph)
				h.sprWall += ph.wall
				h.sprRet += after - before
			}
			log.Printf("%s burst of %d: %s in %s, %v transactions retried", kind, width, ph.summary(), ph.wall.Round(time.Millisecond), after-before)
		}
	}
	s.hot = h
	return nil
}

// burst creates n set CustomRuns at once (run i on context ctxOf(i)) and waits
// for all; wall is from the first create to the last done.
func (c *cluster) burst(ctx context.Context, name string, n int, ctxOf func(int) string) (*phaseResult, error) {
	res := &phaseResult{name: name, op: opSet, inFlight: n}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		last time.Time
	)
	start := time.Now()
	for i := 0; i < n; i++ {
		cr := customRun(name, opSet, 0, i)
		for j := range cr.Spec.Params {
			if cr.Spec.Params[j].Name == "id" {
				cr.Spec.Params[j].Value.StringVal = ctxOf(i)
			}
		}
		wg.Add(1)
		go func(cr *v1beta1.CustomRun) {
			defer wg.Done()
			d, lat, err := c.createAndWait(ctx, cr, runTimeout)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				res.errors++
				if res.firstErr == "" {
					res.firstErr = err.Error()
				}
			default:
				res.lat = append(res.lat, lat)
				if d.at.After(last) {
					last = d.at
				}
				if !d.ok {
					res.failed++
					res.firstErr = cr.Name + ": " + d.reason
				}
			}
		}(cr)
	}
	wg.Wait()
	res.wall = last.Sub(start)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := c.deleteAll(ctx, name); err != nil {
		return res, err
	}
	if bad := res.failed + res.errors; bad > 0 {
		return res, fmt.Errorf("burst %s: %s", name, res.summary())
	}
	return res, nil
}

// txRetries reads cicdstatemgr_store_tx_retries_total from our controller's /metrics.
func (c *cluster) txRetries(ctx context.Context) (float64, error) {
	kv, err := readEnvFile(filepath.Join(c.env.clusterDir, "stack.env"))
	if err != nil {
		return 0, err
	}
	text, err := httpGet(ctx, kv["CICDSTATEMGR_PROBES_URL"]+"/metrics")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, "cicdstatemgr_store_tx_retries_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, errors.New("no cicdstatemgr_store_tx_retries_total on our controller's /metrics")
}

// replicaThroughput measures set throughput at 100 in flight with one replica
// and with two, both with leader election (config/'s setup), each right after
// the baseline's at 100 in flight; then the stack's single replica is back.
func (c *cluster) replicaThroughput(ctx context.Context, n int, s *scaleResult) error {
	defer func() {
		if err := c.restartWith(context.Background(), nil); err != nil {
			log.Printf("restoring the single replica: %v", err)
		}
	}()
	// one, two, one again: drift of the shared machine hits both alike (the two
	// phases of one replica are merged)
	byCount := map[int]*replicaResult{}
	for _, replicas := range []int{1, 2, 1} {
		env := []string{"CONTROLLER_REPLICAS=" + strconv.Itoa(replicas), "CONTROLLER_HA=yes"}
		if err := c.restartWith(ctx, env); err != nil {
			return err
		}
		base, err := c.phase(ctx, fmt.Sprintf("repl-base-%d", replicas), opCopy, 100, n)
		if err != nil {
			return err
		}
		ph, err := c.phase(ctx, fmt.Sprintf("repl-%d", replicas), opSet, 100, n)
		if err != nil {
			return err
		}
		buckets := c.bucketHolders(ctx)
		log.Printf("%d replica(s), buckets %s: %s (baseline %s)", replicas, buckets, ph.summary(), base.summary())
		if rr := byCount[replicas]; rr != nil {
			rr.ph.merge(ph)
			rr.base.merge(base)
			rr.buckets += ", " + buckets
			continue
		}
		byCount[replicas] = &replicaResult{replicas: replicas, ph: ph, base: base, buckets: buckets}
		s.replicas = append(s.replicas, byCount[replicas])
	}
	return nil
}

// restartWith restarts our controller with the stack environment plus env
// (nil: the stack's default single replica, no leader election).
func (c *cluster) restartWith(ctx context.Context, env []string) error {
	log.Printf("restarting our controller with %v", env)
	if err := c.stack(ctx, nil, "stop-controller"); err != nil {
		return err
	}
	if err := c.stack(ctx, append([]string{"CONTROLLER_ARGS="}, env...), "start-controller"); err != nil {
		return err
	}
	name := fmt.Sprintf("restart-%d", time.Now().UnixNano()%1e9)
	// with leader election the buckets are taken within a few retry periods
	if _, err := c.runPhase(ctx, name, opSet, 10, 50, false); err != nil {
		return fmt.Errorf("after the restart: %w", err)
	}
	return nil
}

// bucketHolders says how many of our controller's bucket Leases each holder has
// ("10" with one holder, "6+4" with two).
func (c *cluster) bucketHolders(ctx context.Context) string {
	l, err := c.kube.CoordinationV1().Leases("cicdstatemgr").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	by := map[string]int{}
	for _, le := range l.Items {
		if strings.HasPrefix(le.Name, "cicdstatemgr-controller.") && le.Spec.HolderIdentity != nil && *le.Spec.HolderIdentity != "" {
			by[*le.Spec.HolderIdentity]++
		}
	}
	var counts []int
	for _, n := range by {
		counts = append(counts, n)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(counts)))
	parts := make([]string, len(counts))
	for i, n := range counts {
		parts[i] = strconv.Itoa(n)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}
