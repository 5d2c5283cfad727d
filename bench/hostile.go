package main

// The hostile-neighbour row (issue 11, rule 6 of the threat model: one
// hostile CustomRun never delays another by more than a second): the latency
// of normal `set` CustomRuns alone, then beside a bounded hostile load in
// another namespace, then alone again, all in one run.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"github.com/tektoncd/pipeline/pkg/client/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// hostileNS holds the hostile CustomRuns (the normal ones stay in namespace).
const hostileNS = "bench-hostile"

// hostileLoad is how much hostile work is in flight at once: each bomb and
// hanging worker creates its next CustomRun when its last one is done, each
// slow client opens its next connection slowReconnect after its last one
// closed.
type hostileLoad struct {
	bombs, hanging, slowClients int
}

var hostileRate = hostileLoad{bombs: 10, hanging: 20, slowClients: 50}

// hostileKinds is the load of BENCH_HOSTILE, a comma-separated subset of
// bombs, hanging and slow (to see which kind does what); "": all of them.
func hostileKinds(v string) (hostileLoad, error) {
	if v == "" {
		return hostileRate, nil
	}
	var l hostileLoad
	for _, k := range strings.Split(v, ",") {
		switch strings.TrimSpace(k) {
		case "bombs":
			l.bombs = hostileRate.bombs
		case "hanging":
			l.hanging = hostileRate.hanging
		case "slow":
			l.slowClients = hostileRate.slowClients
		default:
			return l, fmt.Errorf("BENCH_HOSTILE=%q: want a comma-separated subset of bombs, hanging, slow", v)
		}
	}
	return l, nil
}

// cpuProcs are the processes of the stack whose CPU each part reports.
var cpuProcs = []string{"cicdstatemgr-controller", "kube-apiserver", "etcd"}

// machineCPU is the key of the whole machine's busy time in cpuTimes.
const machineCPU = "machine"

// cpuTimes reads the CPU time used so far by each of cpuProcs and, under
// machineCPU, by all cores together (/proc/stat); unreadable ones are left out.
func (c *cluster) cpuTimes() map[string]time.Duration {
	const tick = 10 * time.Millisecond // USER_HZ = 100
	out := map[string]time.Duration{}
	for _, name := range cpuProcs {
		pid, err := c.pidOf(name)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// fields after the command (which may hold spaces): state is 3rd, utime 14th, stime 15th
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			out[name] = time.Duration(u+s) * tick
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) // cpu user nice system idle iowait irq softirq steal ...
		var busy int64
		for i := 1; i < len(f) && i <= 8; i++ {
			if v, err := strconv.ParseInt(f[i], 10, 64); err == nil && i != 4 && i != 5 {
				busy += v
			}
		}
		out[machineCPU] = time.Duration(busy) * tick
	}
	return out
}

// cpuShare is the CPU each process used between two cpuTimes readings, in
// cores (1.0: one core busy all the time).
func cpuShare(a, b map[string]time.Duration, wall time.Duration) map[string]float64 {
	out := map[string]float64{}
	for k, v := range b {
		if u, ok := a[k]; ok && wall > 0 {
			out[k] = float64(v-u) / float64(wall)
		}
	}
	return out
}

// setPart runs one part of the row (runs set CustomRuns, one at a time) and
// the CPU the stack used meanwhile.
func (c *cluster) setPart(ctx context.Context, name string, runs int) (*phaseResult, map[string]float64, error) {
	t := c.cpuTimes()
	start := time.Now()
	ph, err := c.phase(ctx, name, opSet, 1, runs)
	return ph, cpuShare(t, c.cpuTimes(), time.Since(start)), err
}

const (
	slowReconnect = 500 * time.Millisecond
	slowDribble   = time.Second      // one byte per slowDribble
	hostileSettle = 10 * time.Second // after the load stops: renders in progress end, the queue drains
	// hostileWait bounds the wait for one hostile CustomRun: longer than its
	// spec.timeout (10 min), so that a worker never has two in flight
	hostileWait = 11 * time.Minute
)

// bombKinds are the state keys of the bomb context, read in turn.
var bombKinds = []string{"pad", "fork", "deep"}

// bombAppConfig has the doubly recursive macro of test/e2e's
// TestRenderBombsFailAlone: f(40) would render 2^40 calls.
const bombAppConfig = `cicd-contexts:
  stage:
    channel: hostile
jinja2-macros:
  f: "{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}"
`

// bombValues are the set params of the bomb context's init.
func bombValues() []string {
	return []string{`state.pad={{ "x"|ljust:200000000|length }}`, "state.fork={{ f(40) }}",
		"state.deep={{ " + strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000) + " }}"}
}

// slowAppConfig: event build=slow responds to the echo server's /slow.
func slowAppConfig(echoPort string) string {
	return fmt.Sprintf(`cicd-contexts:
  stage:
    channel: hostile
    pipelines:
      build:
        event-handlers:
          slow:
            respond: {message: hello, url: "http://127.0.0.1:%s/slow"}
`, echoPort)
}

// hostileResult is what the hostile-neighbour phase measured.
type hostileResult struct {
	load                  hostileLoad
	before, beside, after *phaseResult
	cpu                   [3]map[string]float64 // of before, beside, after: process -> cores
	loadTime              time.Duration         // from the start of the hostile load to its stop

	mu           sync.Mutex
	bombReasons  map[string]int // outcome reason -> bombs
	bombLat      []time.Duration
	hangEnded    map[string]int // reason -> hanging runs done before the release
	hangCreated  int
	createErrors int
	notDone      int    // hostile CustomRuns not done within hostileWait
	firstErr     string // of the creations that failed
	slowLife     []time.Duration
	slowOutcome  map[string]int // first line the server sent, or "closed, no answer"
	heldPeak     int64          // calls held at /slow at once
	rssPeak      int64          // KiB, sampled during the load
	restarted    bool
}

func (h *hostileResult) note(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f()
}

// hangingEndpoint is /slow of the echo server: while armed, a request hangs
// until releaseAll (or until its caller gives up); otherwise it is answered
// at once.
type hangingEndpoint struct {
	mu      sync.Mutex
	release chan struct{}
	held    atomic.Int64
	peak    atomic.Int64
}

func (h *hangingEndpoint) arm() {
	h.mu.Lock()
	h.release = make(chan struct{})
	h.mu.Unlock()
	h.peak.Store(0)
}

func (h *hangingEndpoint) releaseAll() {
	h.mu.Lock()
	if h.release != nil {
		close(h.release)
		h.release = nil
	}
	h.mu.Unlock()
}

func (h *hangingEndpoint) hang(r *http.Request) {
	h.mu.Lock()
	ch := h.release
	h.mu.Unlock()
	if ch == nil {
		return
	}
	n := h.held.Add(1)
	defer h.held.Add(-1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	select {
	case <-ch:
	case <-r.Context().Done():
	}
}

// hostileRun is a CicdState CustomRun of the hostile namespace.
func hostileRun(name string, params ...v1beta1.Param) *v1beta1.CustomRun {
	return &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: hostileNS, Labels: map[string]string{labelPhase: "hostile"}},
		Spec: v1beta1.CustomRunSpec{
			CustomRef: &v1beta1.TaskRef{APIVersion: "cicdstatemgr.dev/v1alpha1", Kind: "CicdState"},
			Params:    params,
			Timeout:   &metav1.Duration{Duration: 10 * time.Minute},
		},
	}
}

// hostile measures set alone, beside the hostile load, and alone again.
func (c *cluster) hostile(ctx context.Context, load hostileLoad, runs int, rep *report) error {
	res := &hostileResult{load: load, bombReasons: map[string]int{}, hangEnded: map[string]int{}, slowOutcome: map[string]int{}}
	rep.hostile = res
	unwatch, err := c.hostileSetup(ctx)
	if err != nil {
		return err
	}
	defer unwatch()
	pid, err := c.controllerPID()
	if err != nil {
		return err
	}
	if res.before, res.cpu[0], err = c.setPart(ctx, "hostile-alone-1", runs); err != nil {
		return err
	}
	log.Printf("hostile: set alone: %s", res.before.summary())

	hctx, stop := context.WithCancel(ctx)
	defer stop()
	started := time.Now()
	wait := c.startHostile(hctx, res, pid)
	err = c.awaitHostile(ctx, res)
	if err == nil {
		res.beside, res.cpu[1], err = c.setPart(ctx, "hostile-beside", runs)
	}
	stop()
	c.hang.releaseAll()
	wait()
	res.loadTime = time.Since(started)
	res.heldPeak = c.hang.peak.Load()
	if err != nil {
		return err
	}
	log.Printf("hostile: set beside the hostile load: %s", res.beside.summary())
	if err := c.tekton.TektonV1beta1().CustomRuns(hostileNS).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	time.Sleep(hostileSettle)

	if res.after, res.cpu[2], err = c.setPart(ctx, "hostile-alone-2", runs); err != nil {
		return err
	}
	log.Printf("hostile: set alone again: %s", res.after.summary())
	if now, err := c.controllerPID(); err != nil || now != pid {
		res.restarted = true
	}
	return nil
}

// hostileSetup creates the hostile namespace, watches its CustomRuns and
// inits the bomb and slow contexts; unwatch stops the watch.
func (c *cluster) hostileSetup(ctx context.Context) (unwatch func(), err error) {
	_, err = c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hostileNS}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", hostileNS, err)
	}
	if err := c.tekton.TektonV1beta1().CustomRuns(hostileNS).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	f := externalversions.NewSharedInformerFactoryWithOptions(c.tekton, 0, externalversions.WithNamespace(hostileNS))
	inf := f.Tekton().V1beta1().CustomRuns().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onCustomRun,
		UpdateFunc: func(_, obj any) { c.onCustomRun(obj) },
	}); err != nil {
		return nil, err
	}
	f.Start(stop)
	f.WaitForCacheSync(stop)
	unwatch = func() {
		close(stop)
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c.tekton.TektonV1beta1().CustomRuns(hostileNS).DeleteCollection(dctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	}
	inits := []*v1beta1.CustomRun{
		hostileRun("hostile-init-bomb", strParam("op", "init"), strParam("id", "bomb"), strParam("app-config", bombAppConfig),
			arrParam("set", bombValues()...)),
		hostileRun("hostile-init-slow", strParam("op", "init"), strParam("id", "slow"), strParam("app-config", slowAppConfig(c.env.echoPort))),
	}
	for _, cr := range inits {
		d, _, err := c.createAndWait(ctx, cr, runTimeout)
		if err == nil && !d.ok {
			err = errors.New(d.reason)
		}
		if err != nil {
			unwatch()
			return nil, fmt.Errorf("hostile: %s: %w", cr.Name, err)
		}
	}
	return unwatch, nil
}

// startHostile starts the hostile load and an RSS sampler of our controller
// (pid), all stopped by ctx; wait waits for them.
func (c *cluster) startHostile(ctx context.Context, res *hostileResult, pid int) (wait func()) {
	c.hang.arm()
	var wg sync.WaitGroup
	spawn := func(n int, f func(i int)) {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				f(i)
			}(i)
		}
	}
	var seq atomic.Int64
	spawn(res.load.bombs, func(i int) {
		for k := i; ctx.Err() == nil; k++ {
			kind := bombKinds[k%len(bombKinds)]
			cr := hostileRun(fmt.Sprintf("hostile-bomb-%d", seq.Add(1)), strParam("op", "get"), strParam("id", "bomb"), arrParam("get", "v=state."+kind))
			c.hostileOne(ctx, res, cr, func(d done, lat time.Duration) {
				res.bombReasons[reasonOf(d)]++
				res.bombLat = append(res.bombLat, lat)
			})
		}
	})
	spawn(res.load.hanging, func(int) {
		for ctx.Err() == nil {
			cr := hostileRun(fmt.Sprintf("hostile-hang-%d", seq.Add(1)), strParam("op", "handle-event"), strParam("id", "slow"), strParam("event", "build=slow"))
			res.note(func() { res.hangCreated++ })
			c.hostileOne(ctx, res, cr, func(d done, _ time.Duration) { res.hangEnded[reasonOf(d)]++ })
		}
	})
	spawn(res.load.slowClients, func(i int) { slowClient(ctx, c.env.controllerAddr, i%2 == 1, res) })
	spawn(1, func(int) { sampleRSS(ctx, pid, res) })
	return wg.Wait
}

// hostileOne creates cr and waits for it (until ctx ends); seen records an
// outcome under res.mu.
func (c *cluster) hostileOne(ctx context.Context, res *hostileResult, cr *v1beta1.CustomRun, seen func(done, time.Duration)) {
	d, lat, err := c.createAndWait(ctx, cr, hostileWait)
	switch {
	case ctx.Err() != nil:
	case errors.Is(err, errRunTimeout):
		res.note(func() { res.notDone++ })
	case err != nil:
		res.note(func() {
			res.createErrors++
			if res.firstErr == "" {
				res.firstErr = fmt.Sprintf("%s: %v", cr.Name, err)
			}
		})
		sleep(ctx, time.Second) // an error is no reason to spin
	default:
		res.note(func() { seen(d, lat) })
	}
}

// reasonOf is the reason of an outcome (done.reason is "Reason: message").
func reasonOf(d done) string {
	r, _, _ := strings.Cut(d.reason, ":")
	return r
}

// awaitHostile waits until the hostile load is in place: the first bomb
// done, the slow endpoint holding as many calls as it will (budgets.
// callsPerHost, 16 by default, or all the hanging runs; at most a minute),
// the slow clients connected for a while.
func (c *cluster) awaitHostile(ctx context.Context, res *hostileResult) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var bombs int
		res.note(func() { bombs = len(res.bombLat) })
		if (bombs > 0 || res.load.bombs == 0) && c.hang.held.Load() >= int64(min(16, res.load.hanging)) {
			break
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	sleep(ctx, 3*time.Second)
	var bombs int
	res.note(func() { bombs = len(res.bombLat) })
	log.Printf("hostile: load in place: %d bombs done, %d calls held at /slow", bombs, c.hang.held.Load())
	return ctx.Err()
}

// slowClient keeps one slow, unauthenticated connection to addr (the Slack
// port) open at a time: the request line and headers, then one byte per
// slowDribble, either of a header (slowloris) or, with body, of the body after
// well-formed but unverifiable Slack signature headers.
func slowClient(ctx context.Context, addr string, body bool, res *hostileResult) {
	for ctx.Err() == nil {
		t0 := time.Now()
		outcome := slowConn(ctx, addr, body)
		life := time.Since(t0)
		res.note(func() {
			res.slowLife = append(res.slowLife, life)
			res.slowOutcome[outcome]++
		})
		sleep(ctx, slowReconnect)
	}
}

// slowConn is one connection of slowClient; it returns the first line the
// server sent, or what ended the connection.
func slowConn(ctx context.Context, addr string, body bool) string {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "dial error"
	}
	defer conn.Close()
	head := "POST /slack/interactions HTTP/1.1\r\nHost: controller\r\nX-Slow: "
	if body {
		head = fmt.Sprintf("POST /slack/interactions HTTP/1.1\r\nHost: controller\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
			"X-Slack-Request-Timestamp: %d\r\nX-Slack-Signature: v0=%s\r\nContent-Length: 65536\r\n\r\n", time.Now().Unix(), strings.Repeat("0", 64))
	}
	answer := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(conn).ReadString('\n')
		if line = strings.TrimSpace(line); line == "" {
			line = "closed, no answer"
			if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "EOF") {
				line = "closed, no answer (reset)"
			}
		}
		answer <- line
	}()
	if _, err := conn.Write([]byte(head)); err != nil {
		conn.Close()
		return <-answer
	}
	tick := time.NewTicker(slowDribble)
	defer tick.Stop()
	for {
		select {
		case a := <-answer:
			return a
		case <-ctx.Done():
			conn.Close()
			<-answer
			return "still open at the end"
		case <-tick.C:
			if _, err := conn.Write([]byte("a")); err != nil {
				conn.Close()
				return <-answer
			}
		}
	}
}

// sampleRSS keeps the peak VmRSS of pid in res until ctx ends.
func sampleRSS(ctx context.Context, pid int, res *hostileResult) {
	for {
		if rss, _, err := memory(pid); err == nil {
			res.note(func() { res.rssPeak = max(res.rssPeak, rss) })
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return
		}
	}
}

// sleep sleeps d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
