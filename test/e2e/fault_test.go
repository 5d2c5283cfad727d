package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"

	"github.com/cicdstatemgr/cicdstatemgr/test/faultproxy"
)

// Fault tests: many writers on one context, and Redis or our controller
// failing while 200 CustomRuns run. Every test appends distinct values to
// state.items of ONE context, so that a lost update, a double apply or a
// lost write shows in the list; the list is read with the CLI binary.

const (
	batchSize  = 200
	runTimeout = 2 * time.Minute // far longer than any fault below
)

// TestParallelPipelinesOneContext: 50 PipelineRuns created at once, each
// appending its own value to state.items of the same context: the list ends
// with exactly the 50 values, each once.
func TestParallelPipelinesOneContext(t *testing.T) {
	const n = 50
	ns := namespace(t, "parallel")
	id := ns + "-ctx"
	kubectl(t, `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: append}
spec:
  params: [{name: id}, {name: value}]
  tasks:
  - name: add
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: set}
    - {name: id, value: $(params.id)}
    - {name: set, value: ["state.items[]=$(params.value)"]}
`, "-n", ns, "apply", "-f", "-")
	initContext(t, ns, id)

	start := time.Now()
	want := map[string]string{}
	err := createAll(n, func(i int) error {
		name, value := fmt.Sprintf("append-%02d", i+1), fmt.Sprintf("p%02d", i+1)
		_, err := tekton.TektonV1().PipelineRuns(ns).Create(context.Background(), &v1.PipelineRun{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1.PipelineRunSpec{
				PipelineRef: &v1.PipelineRef{Name: "append"},
				Params:      v1.Params{{Name: "id", Value: *v1.NewStructuredValues(id)}, {Name: "value", Value: *v1.NewStructuredValues(value)}},
			},
		}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		want[fmt.Sprintf("append-%02d", i+1)] = fmt.Sprintf("p%02d", i+1)
	}
	deadline := time.Now().Add(100 * time.Second)
	var prs []v1.PipelineRun
	for {
		l, err := tekton.TektonV1().PipelineRuns(ns).List(context.Background(), metav1.ListOptions{})
		done := 0
		if err == nil {
			prs = l.Items
			for i := range prs {
				if c := prs[i].Status.GetCondition(apis.ConditionSucceeded); c != nil && !c.IsUnknown() {
					done++
				}
			}
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d PipelineRuns done after 100s: %v\n%s", done, n, err, describe(ns))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%d PipelineRuns done in %s", n, time.Since(start).Round(time.Millisecond))
	for i := range prs {
		succeeded(t, &prs[i])
	}

	// read back twice: with a get CustomRun and with the CLI
	got := runOne(t, ns, customRun("read", "read", time.Minute, strParam("op", "get"), strParam("id", id),
		arrParam("get", "items=state.items")), time.Minute)
	if !got.IsSuccessful() {
		t.Fatalf("get: %+v", got.Status.GetCondition(apis.ConditionSucceeded))
	}
	var viaRun []string
	for _, r := range got.Status.Results {
		if r.Name == "items" {
			if err := json.Unmarshal([]byte(r.Value), &viaRun); err != nil {
				t.Fatalf("items result %q: %v", r.Value, err)
			}
		}
	}
	viaCLI := items(t, ns, id)
	if strings.Join(viaRun, ",") != strings.Join(viaCLI, ",") {
		t.Errorf("the get CustomRun and the CLI disagree:\n  %v\n  %v", viaRun, viaCLI)
	}
	if len(viaCLI) != n {
		t.Errorf("state.items holds %d values, want %d: %v", len(viaCLI), n, viaCLI)
	}
	seen := map[string]int{}
	for _, v := range viaCLI {
		seen[v]++
	}
	for _, v := range want {
		if seen[v] != 1 {
			t.Errorf("value %s is in state.items %d times, want once", v, seen[v])
		}
	}
}

// faultMidway creates the batch (one run every pace), waits until `at` of
// its runs are done, injects the fault, then recovers. It fails the test
// when the batch was already finished when the fault hit (nothing would be
// tested).
func faultMidway(t *testing.T, ns, batch string, runs []*v1beta1.CustomRun, pace time.Duration, at int, fault, recover func()) []v1beta1.CustomRun {
	t.Helper()
	start := time.Now()
	created := createRuns(ns, runs, pace)
	waitDone(t, ns, batch, at, 90*time.Second)
	fault()
	faultAt := time.Since(start)
	cur, err := listBatch(ns, batch)
	if err != nil {
		t.Fatal(err)
	}
	doneAtFault := countDone(cur)
	t.Logf("fault injected after %s with %d of %d runs created, %d done", faultAt.Round(time.Millisecond), len(cur), len(runs), doneAtFault)
	if doneAtFault == len(runs) {
		t.Fatalf("every run was done before the fault: nothing tested")
	}
	recover()
	if err := <-created; err != nil {
		t.Fatalf("creating the runs: %v", err)
	}
	final := waitDone(t, ns, batch, len(runs), 100*time.Second)
	t.Logf("all %d runs done %s after the first was created:\n%s", len(runs), time.Since(start).Round(time.Millisecond), summarize(final))
	return final
}

// TestFaultRedisStoppedDuring200Runs: Redis is stopped (SIGTERM: it saves
// its snapshot) while 200 set runs append to one context, and started again
// 3 s later. Every run succeeds, every value is in the list exactly once:
// nothing lost, nothing applied twice.
func TestFaultRedisStoppedDuring200Runs(t *testing.T) {
	ns := namespace(t, "redisstop")
	id := ns + "-ctx"
	initContext(t, ns, id)
	t.Cleanup(func() { stack("start-redis") })
	runs, values := setBatch("add", id, batchSize, runTimeout)
	final := faultMidway(t, ns, "add", runs, 0, 50, func() {
		if err := stack("stop-redis"); err != nil {
			t.Fatal(err)
		}
		redisMustBeDown(t)
	}, func() {
		time.Sleep(3 * time.Second)
		if err := stack("start-redis"); err != nil {
			t.Fatal(err)
		}
	})
	list := items(t, ns, id)
	checkBatch(t, final, values, list, nil)
	if len(list) != batchSize {
		t.Errorf("state.items holds %d values, want %d", len(list), batchSize)
	}
	t.Logf("%d values in state.items; %d runs completed from the record of an earlier attempt", len(list), replayed(final))
}

// TestFaultRedisKilledDuring200Runs: Redis is SIGKILLed (no shutdown save)
// while 200 set runs append to one context, and started again 2 s later
// from its last RDB snapshot (taken every second). On a Redis Cluster every
// primary is killed and the runs go round-robin to one context per primary,
// so that what follows holds on each node, against that node's snapshot.
//
// What this can guarantee, and asserts: every run ends (none fails, as the
// outage is far shorter than the timeout); no value is in the list twice,
// even for runs whose write was in flight when Redis died (the write and its
// exactly-once record are one MULTI/EXEC in the context's hash slot, so the
// snapshot of the node holding it has both or neither); no foreign value. A
// Succeeded run's value may be missing only if the run completed after the
// last snapshot its node wrote before it died (the mtime of the node's RDB
// file; a snapshot's data is from its fork, at most a second earlier, and
// completion times have second precision): that is the last second of writes
// an RDB-only Redis loses on a crash. Any other missing value fails the test.
func TestFaultRedisKilledDuring200Runs(t *testing.T) {
	ns := namespace(t, "rediskill")
	nodes := primaries(t)
	ids := contextPerPrimary(t, ns, nodes)
	var order []string
	for i, n := range nodes {
		initContextBy(t, ns, ids[n], fmt.Sprintf("init-%d", i))
		order = append(order, ids[n])
	}
	// the contexts themselves must survive the crash: snapshot them now
	snapshots := map[string]string{}
	for _, n := range nodes {
		snapshots[n] = saveSnapshot(t, n)
	}
	t.Cleanup(func() { stack("start-redis") })
	taken := map[string]time.Time{}
	runs, values, contexts := setBatchOver("add", order, batchSize, runTimeout)
	final := faultMidway(t, ns, "add", runs, 25*time.Millisecond, 120, func() {
		if err := stack("kill-redis"); err != nil {
			t.Fatal(err)
		}
		redisMustBeDown(t)
		for n, path := range snapshots {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatalf("no RDB snapshot of %s after the kill: %v", n, err)
			}
			taken[n] = fi.ModTime()
		}
	}, func() {
		time.Sleep(2 * time.Second)
		if err := stack("start-redis"); err != nil {
			t.Fatal(err)
		}
	})
	for _, n := range nodes {
		mine, vals := runsOn(ids[n], final, values, contexts)
		list := items(t, ns, ids[n])
		horizon := taken[n].Add(-time.Second).Truncate(time.Second)
		lost := checkBatch(t, mine, vals, list, func(cr *v1beta1.CustomRun) bool {
			return cr.Status.CompletionTime != nil && !cr.Status.CompletionTime.Time.Before(horizon)
		})
		before := 0
		for i := range mine {
			if c := mine[i].Status.CompletionTime; c != nil && c.Time.Before(horizon) {
				before++
			}
		}
		t.Logf("node %s, context %s: last snapshot before the kill %s: %d runs completed before %s (their values must be kept), %d succeeded runs completed later and were lost with the last second; %d values in state.items; %d runs completed from the record of an earlier attempt",
			n, ids[n], taken[n].Format("15:04:05.000"), before, horizon.Format("15:04:05"), lost, len(list), replayed(mine))
		if len(list)+lost != len(mine) {
			t.Errorf("context %s on %s: %d values + %d lost != %d runs", ids[n], n, len(list), lost, len(mine))
		}
	}
}

// TestFaultControllerKilledDuring200Runs: our controller is SIGKILLed while
// 200 set runs append to one context and started again: every run
// succeeds, every value is in the list exactly once.
func TestFaultControllerKilledDuring200Runs(t *testing.T) {
	ns := namespace(t, "ctlkill")
	id := ns + "-ctx"
	initContext(t, ns, id)
	t.Cleanup(func() { stack("start-controller") })
	runs, values := setBatch("add", id, batchSize, runTimeout)
	final := faultMidway(t, ns, "add", runs, 0, 50, func() {
		if err := stack("stop-controller", "--kill"); err != nil {
			t.Fatal(err)
		}
		mustBeDown(t, strings.TrimPrefix(ctrlURL, "http://"))
	}, func() {
		time.Sleep(time.Second)
		if err := stack("start-controller"); err != nil {
			t.Fatal(err)
		}
	})
	list := items(t, ns, id)
	checkBatch(t, final, values, list, nil)
	if len(list) != batchSize {
		t.Errorf("state.items holds %d values, want %d", len(list), batchSize)
	}
	t.Logf("%d values in state.items; %d runs completed from the record of an earlier attempt", len(list), replayed(final))
}

// TestFaultSlowRedis: the controller talks to Redis through proxies that
// hold every Redis reply for 50 ms, one in front of each node: on a Redis
// Cluster the nodes announce their proxy's port (announceProxies), so that
// the slot map and redirections lead the controller through them too, and
// on Sentinel the sentinels name the proxies (announceProxiesToSentinels). 30 set
// runs on one context and a get are slower (each op needs at least two
// replies in sequence, so its mean duration is at least 100 ms) but correct.
func TestFaultSlowRedis(t *testing.T) {
	const (
		n     = 30
		delay = 50 * time.Millisecond
	)
	proxies := slowProxies(t, delay)
	t.Cleanup(func() {
		// back to the controller the other tests expect (after the stack's
		// configuration is back: cleanups run last registered first)
		stack("stop-controller")
		if err := stack("start-controller"); err != nil {
			t.Errorf("restarting the controller: %v", err)
		}
	})
	switch {
	case stackIsCluster():
		announceProxies(t, proxies)
	case stackIsSentinel():
		announceProxiesToSentinels(t, proxies)
	}
	// a fresh controller on the proxies' addresses: no connection made before
	// is left to bypass them
	if err := stack("stop-controller"); err != nil {
		t.Fatal(err)
	}
	if !stackIsSentinel() { // (the sentinels hand out the proxies' addresses)
		pointControllerAt(t, proxiedDatasource(proxies), "")
	}
	if err := stack("start-controller"); err != nil {
		t.Fatal(err)
	}

	ns := namespace(t, "slowredis")
	id := ns + "-ctx"
	initContext(t, ns, id)
	runs, values := setBatch("add", id, n, runTimeout)
	start := time.Now()
	if err := <-createRuns(ns, runs, 0); err != nil {
		t.Fatal(err)
	}
	final := waitDone(t, ns, "add", n, 90*time.Second)
	elapsed := time.Since(start)
	got := runOne(t, ns, customRun("read", "read", time.Minute, strParam("op", "get"), strParam("id", id),
		arrParam("get", "items:csv=state.items")), time.Minute)

	list := items(t, ns, id)
	checkBatch(t, final, values, list, nil)
	if len(list) != n {
		t.Errorf("state.items holds %d values, want %d", len(list), n)
	}
	if !got.IsSuccessful() {
		t.Fatalf("get through the slow proxy: %+v", got.Status.GetCondition(apis.ConditionSucceeded))
	}
	want := append([]string(nil), list...)
	sort.Strings(want)
	for _, r := range got.Status.Results {
		if r.Name == "items" {
			have := strings.Split(r.Value, ",")
			sort.Strings(have)
			if strings.Join(have, ",") != strings.Join(want, ",") {
				t.Errorf("get result %q, the CLI read %v", r.Value, list)
			}
		}
	}

	var stats faultproxy.Stats
	for _, p := range proxies {
		st := p.Stats()
		stats.Conns += st.Conns
		stats.DelayedReads += st.DelayedReads
		stats.BytesUpstream += st.BytesUpstream
		stats.BytesToClient += st.BytesToClient
	}
	count := metric(t, `cicdstatemgr_op_duration_seconds_count{op="set"}`)
	sum := metric(t, `cicdstatemgr_op_duration_seconds_sum{op="set"}`)
	if stats.DelayedReads < 2*n {
		t.Errorf("the proxies held only %d replies for %d ops: is the controller using them? %+v", stats.DelayedReads, n, stats)
	}
	if count < n {
		t.Fatalf("the controller measured %v set ops, want at least %d", count, n)
	}
	mean := time.Duration(sum / count * float64(time.Second))
	if mean < 2*delay {
		t.Errorf("mean set op took %s through a proxy adding %s per reply: want at least %s", mean, delay, 2*delay)
	}
	t.Logf("%d set runs through %d slow proxies done in %s; mean set op %s over %v ops; proxies: %+v",
		n, len(proxies), elapsed.Round(time.Millisecond), mean.Round(time.Millisecond), count, stats)
}
