package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
