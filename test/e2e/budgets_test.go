package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"knative.dev/pkg/apis"
)

// TestRenderBombsFailAlone: hostile templates (a padding bomb, a macro that
// calls itself twice per level, an expression nested a hundred thousand
// levels deep) each fail with their render budget, while a normal CustomRun
// created at the same time succeeds, the controller keeps its process and
// stays ready, and the budget metric counts them.
func TestRenderBombsFailAlone(t *testing.T) {
	ns := namespace(t, "budgets")
	app := `
cicd-contexts:
  stage:
    channel: budgets
jinja2-macros:
  f: "{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}"
`
	if _, reason, msg := outcome(t, ns, opRun("init", "init", "ctx", strParam("app-config", app),
		arrParam("set", `state.pad={{ "x"|ljust:200000000|length }}`, "state.fork={{ f(40) }}",
			"state.deep={{ "+strings.Repeat("(", 100000)+"1"+strings.Repeat(")", 100000)+" }}"))); reason != "Succeeded" {
		t.Fatalf("init: %s: %s", reason, msg)
	}
	startedAt := metric(t, "process_start_time_seconds")
	outputBefore := metricOr(t, `cicdstatemgr_budget_exceeded_total{budget="output"}`, 0)

	bombs := map[string]string{"pad": "output", "fork": "", "deep": "depth"}
	var wg sync.WaitGroup
	results := map[string][2]string{}
	var mu sync.Mutex
	for name := range bombs {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			_, reason, msg := outcome(t, ns, opRun("bomb-"+name, "get", "ctx", arrParam("get", "v=state."+name)))
			mu.Lock()
			results[name] = [2]string{reason, msg}
			mu.Unlock()
		}(name)
	}
	// A normal CustomRun beside them.
	normal := runOne(t, ns, opRun("normal", "set", "ctx", arrParam("set", "state.ok=yes")), time.Minute)
	wg.Wait()
	if c := normal.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		t.Fatalf("the normal CustomRun beside the bombs: %s: %s", c.Reason, c.Message)
	}
	for name, budget := range bombs {
		r := results[name]
		if r[0] != "TemplateError" || !strings.Contains(r[1], "render budget exceeded") || (budget != "" && !strings.Contains(r[1], budget)) {
			t.Errorf("bomb %s: %s: %.300s (want TemplateError, render budget exceeded %s)", name, r[0], r[1], budget)
		}
	}
	if got := metric(t, "process_start_time_seconds"); got != startedAt {
		t.Fatalf("the controller restarted (started at %v, now %v)\n%s", startedAt, got, controllerLogTail())
	}
	if got := metricOr(t, `cicdstatemgr_budget_exceeded_total{budget="output"}`, 0); got < outputBefore+1 {
		t.Errorf("budget_exceeded_total{budget=output} %v -> %v", outputBefore, got)
	}
	if peak := controllerPeakRSS(t); peak > 256<<20 {
		t.Errorf("the controller's peak RSS is %d MiB, over the 256 MiB its Deployment allows", peak>>20)
	}
	resp, err := http.Get(probeURL + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz after the bombs: %v %v", resp, err)
	}
	resp.Body.Close()
	// Positive control: the same get of a normal value succeeds.
	done, reason, msg := outcome(t, ns, opRun("after", "get", "ctx", arrParam("get", "v=state.ok")))
	if reason != "Succeeded" || resultOf(done, "v") != "yes" {
		t.Fatalf("get after the bombs: %s: %s", reason, msg)
	}
}

// controllerPeakRSS is VmHWM of our controller's process, in bytes.
func controllerPeakRSS(t *testing.T) int64 {
	t.Helper()
	pid, err := os.ReadFile(filepath.Join(stackEnv["CLUSTER_DIR"], "run", "cicdstatemgr-controller.pid"))
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(pid)), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// metricOr is metric, or def when the sample is not exposed yet (a counter
// with labels appears at its first increment).
func metricOr(t *testing.T, sample string, def float64) float64 {
	t.Helper()
	resp, err := http.Get(probeURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		body.Write(buf[:n])
		if rerr != nil {
			break
		}
	}
	resp.Body.Close()
	if !strings.Contains(body.String(), sample+" ") {
		return def
	}
	return metric(t, sample)
}

// hangingEndpoint serves the stack's admin host (127.0.0.1:ECHO_PORT): a
// request to /slow hangs until release is closed, any other is answered at
// once. held counts the calls hanging now, mostHeld the most at once.
type hangingEndpoint struct {
	held, mostHeld atomic.Int32
	release        chan struct{}
}

func (h *hangingEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// read the body: only then does the server notice a caller giving up
	_, _ = io.Copy(io.Discard, r.Body)
	if r.URL.Path == "/slow" {
		n := h.held.Add(1)
		defer h.held.Add(-1)
		for m := h.mostHeld.Load(); n > m && !h.mostHeld.CompareAndSwap(m, n); m = h.mostHeld.Load() {
		}
		select {
		case <-h.release:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok": true}`)
}

// TestSlowEndpointHoldsNoWorker: rule 6 of docs/security.md for outbound
// calls. Twenty handle-event CustomRuns whose endpoint hangs (more than the
// controller's eight workers, more than budgets.eventsInFlight) do not stop a
// normal CustomRun created after them: it succeeds while every hanging one is
// still running (OpInProgress), the endpoint never holds more calls than
// budgets.eventsInFlight (12) lets run at once, and it does hold that many
// (the bound is reached, not merely unmet); the controller keeps its process
// and memory, and when the endpoint answers every hanging run succeeds.
func TestSlowEndpointHoldsNoWorker(t *testing.T) {
	ep := &hangingEndpoint{release: make(chan struct{})}
	serveAdminHost(t, ep)
	release := sync.OnceFunc(func() { close(ep.release) })
	t.Cleanup(release) // before the server closes: cleanups run last first

	ns := namespace(t, "slow-endpoint")
	app := fmt.Sprintf(`
cicd-contexts:
  stage:
    channel: c
    pipelines:
      build:
        event-handlers:
          slow:
            respond: {message: hello, url: "http://127.0.0.1:%[1]s/slow"}
`, stackEnv["ECHO_PORT"])
	if _, reason, msg := outcome(t, ns, opRun("init", "init", "app", strParam("app-config", app))); reason != "Succeeded" {
		t.Fatalf("init: %s: %s", reason, msg)
	}
	startedAt := metric(t, "process_start_time_seconds")

	const hanging = 20
	runs := make([]*v1beta1.CustomRun, hanging)
	for i := range runs {
		runs[i] = customRun(fmt.Sprintf("slow-%02d", i), "slow", 5*time.Minute,
			strParam("op", "handle-event"), strParam("id", "app"), strParam("event", "build=slow"))
	}
	if err := <-createRuns(ns, runs, 0); err != nil {
		t.Fatal(err)
	}
	// wait until the endpoint holds as many calls as the controller lets
	// handle-events run at once (budgets.eventsInFlight, 12 by default)
	const eventsInFlight = 12
	waitFor(t, 2*time.Minute, "the hanging endpoint holds budgets.eventsInFlight calls", func() bool {
		return ep.held.Load() >= eventsInFlight
	})

	normal := runOne(t, ns, opRun("normal", "set", "app", arrParam("set", "state.ok=yes")), 2*time.Minute)
	if c := normal.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		t.Fatalf("the normal CustomRun beside the hanging ones: %s: %s", c.Reason, c.Message)
	}
	stillRunning, err := listBatch(ns, "slow")
	if err != nil {
		t.Fatal(err)
	}
	if n := countDone(stillRunning); n != 0 {
		t.Fatalf("%d hanging runs ended before the normal one was done (the check needs them all hanging): %s", n, summarize(stillRunning))
	}
	inProgress := 0
	for i := range stillRunning {
		if c := stillRunning[i].Status.GetCondition(apis.ConditionSucceeded); c != nil && c.Reason == "OpInProgress" {
			inProgress++
		}
	}
	if inProgress < 8 {
		t.Errorf("%d hanging runs report OpInProgress, want at least the 8 workers' worth: %s", inProgress, summarize(stillRunning))
	}
	if most := ep.mostHeld.Load(); most > eventsInFlight {
		t.Errorf("the endpoint held %d calls at once, over budgets.eventsInFlight (%d)", most, eventsInFlight)
	}

	release()
	done := waitDone(t, ns, "slow", hanging, 3*time.Minute)
	for i := range done {
		if c := done[i].Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
			t.Errorf("%s after the endpoint answered: %s: %s", done[i].Name, c.Reason, c.Message)
		}
	}
	if got := metric(t, "process_start_time_seconds"); got != startedAt {
		t.Fatalf("the controller restarted\n%s", controllerLogTail())
	}
	if peak := controllerPeakRSS(t); peak > 256<<20 {
		t.Errorf("the controller's peak RSS is %d MiB, over 256 MiB", peak>>20)
	}
}

// waitFor polls cond every 250 ms until it holds, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s\n%s", timeout, what, controllerLogTail())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestSizeBombsFailAlone: rule 6 of docs/security.md for what one op builds.
// An app config whose hundred variables render a megabyte each fails its
// init with the opOutput budget (each render is within its own budget) and
// writes nothing; a set path nested 1,100 levels deep fails with
// InvalidParams and leaves the context readable. A normal CustomRun beside
// them succeeds, the controller keeps its process and memory, and both
// budgets are counted. Positive controls: three such variables, and a path
// 900 levels deep, are accepted.
func TestSizeBombsFailAlone(t *testing.T) {
	ns := namespace(t, "size-bombs")
	vars := func(n int) string {
		var b strings.Builder
		b.WriteString("cicd-contexts:\n  stage: {channel: c}\nvariables:\n")
		for i := range n {
			fmt.Fprintf(&b, "  v%d: '{{ \"x\"|ljust:1048576 }}'\n", i)
		}
		return b.String()
	}
	if _, reason, msg := outcome(t, ns, opRun("init", "init", "ctx", strParam("app-config", vars(3)), arrParam("set", "state.k=v"))); reason != "Succeeded" {
		t.Fatalf("init with three variables of 1 MiB: %s: %s", reason, msg)
	}
	startedAt := metric(t, "process_start_time_seconds")
	opOutputBefore := metricOr(t, `cicdstatemgr_budget_exceeded_total{budget="opOutput"}`, 0)
	depthBefore := metricOr(t, `cicdstatemgr_budget_exceeded_total{budget="documentDepth"}`, 0)

	var wg sync.WaitGroup
	var bombReason, bombMsg, deepReason, deepMsg string
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, bombReason, bombMsg = outcome(t, ns, opRun("vars", "init", "bomb", strParam("app-config", vars(100))))
	}()
	go func() {
		defer wg.Done()
		_, deepReason, deepMsg = outcome(t, ns, opRun("deep", "set", "ctx", arrParam("set", "state."+strings.Repeat("a.", 1100)+"b=v")))
	}()
	normal := runOne(t, ns, opRun("normal", "set", "ctx", arrParam("set", "state.ok=yes")), time.Minute)
	wg.Wait()
	if c := normal.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		t.Fatalf("the normal CustomRun beside the bombs: %s: %s", c.Reason, c.Message)
	}
	if bombReason != "TemplateError" || !strings.Contains(bombMsg, "render budget exceeded (opOutput: 8388608)") {
		t.Errorf("a hundred variables of 1 MiB: %s: %.300s", bombReason, bombMsg)
	}
	if deepReason != "InvalidParams" || !strings.Contains(deepMsg, "nested deeper than 1000 levels") {
		t.Errorf("a set 1,100 levels deep: %s: %.300s", deepReason, deepMsg)
	}
	if _, reason, _ := outcome(t, ns, opRun("bomb-get", "get", "bomb", arrParam("get", "v=state"))); reason != "ContextNotFound" {
		t.Errorf("the failed init wrote its context (get: %s)", reason)
	}
	got, reason, msg := outcome(t, ns, opRun("after", "get", "ctx", arrParam("get", "k=state.k", "ok=state.ok")))
	if reason != "Succeeded" || resultOf(got, "k") != "v" || resultOf(got, "ok") != "yes" {
		t.Fatalf("the context after the refused deep set: %s: %s", reason, msg)
	}
	if _, reason, msg := outcome(t, ns, opRun("deep-ok", "set", "ctx", arrParam("set", "state."+strings.Repeat("a.", 900)+"b=v"))); reason != "Succeeded" {
		t.Fatalf("a set 900 levels deep: %s: %s", reason, msg)
	}
	if metricOr(t, `cicdstatemgr_budget_exceeded_total{budget="opOutput"}`, 0) <= opOutputBefore ||
		metricOr(t, `cicdstatemgr_budget_exceeded_total{budget="documentDepth"}`, 0) <= depthBefore {
		t.Error("the opOutput and documentDepth budgets were not counted")
	}
	if got := metric(t, "process_start_time_seconds"); got != startedAt {
		t.Fatalf("the controller restarted\n%s", controllerLogTail())
	}
	if peak := controllerPeakRSS(t); peak > 256<<20 {
		t.Errorf("the controller's peak RSS is %d MiB, over 256 MiB", peak>>20)
	}
}
