package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// The leader election of the replicas, as config/303-config-leader-election.yaml
// sets it (hack/stack.sh applies that file).
const (
	leaseBuckets  = 10
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	leaseRetry    = 2 * time.Second
	systemNS      = "cicdstatemgr"
)

// replicaProbeURL is the /metrics listener of replica i (hack/stack.sh:
// CONTROLLER_PROBES_PORT + CONTROLLER_PORT_STEP*(i-1), step -10).
func replicaProbeURL(t *testing.T, i int) string {
	t.Helper()
	p, err := strconv.Atoi(stackEnv["CONTROLLER_PROBES_PORT"])
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", p-10*(i-1))
}

// replicaLog is the log of replica i, from its last start on.
func replicaLog(i int) string {
	name := "cicdstatemgr-controller"
	if i > 1 {
		name += fmt.Sprintf("-%d", i)
	}
	b, _ := os.ReadFile(filepath.Join(stackEnv["CLUSTER_DIR"], "logs", name+".log"))
	s := string(b)
	if j := strings.LastIndex(s, "\n===== "); j >= 0 {
		s = s[j:]
	}
	return s
}

var electedID = regexp.MustCompile(`leader-elected mode with id \\?"([^"\\]+)\\?"`)

// replicaID waits for the leader-election identity replica i logs at start.
func replicaID(t *testing.T, i int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := electedID.FindStringSubmatch(replicaLog(i)); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d logged no leader-elected identity within 30s:\n%s", i, tail(replicaLog(i), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// bucketHolders returns the holder of each bucket Lease of the controller
// (by Lease name); it fails unless there are exactly leaseBuckets of them.
func bucketHolders(t *testing.T) map[string]string {
	t.Helper()
	l, err := kube.CoordinationV1().Leases(systemNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	suffix := fmt.Sprintf("-of-%02d", leaseBuckets)
	for _, le := range l.Items {
		if !strings.HasPrefix(le.Name, "cicdstatemgr-controller.") || !strings.HasSuffix(le.Name, suffix) {
			continue
		}
		h := ""
		if le.Spec.HolderIdentity != nil {
			h = *le.Spec.HolderIdentity
		}
		out[le.Name] = h
	}
	if len(out) != leaseBuckets {
		t.Fatalf("%d bucket Leases *%s in %s, want %d: %v", len(out), suffix, systemNS, leaseBuckets, out)
	}
	return out
}

func countHeld(holders map[string]string) map[string]int {
	n := map[string]int{}
	for _, h := range holders {
		n[h]++
	}
	return n
}

// handLease gives the bucket Lease name to the identity to, fresh (a new
// transition), as a leader election that to won would.
func handLease(t *testing.T, name, to string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		le, err := kube.CoordinationV1().Leases(systemNS).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.NewMicroTime(time.Now())
		le.Spec.HolderIdentity, le.Spec.AcquireTime, le.Spec.RenewTime = &to, &now, &now
		tr := int32(1)
		if le.Spec.LeaseTransitions != nil {
			tr += *le.Spec.LeaseTransitions
		}
		le.Spec.LeaseTransitions = &tr
		_, err = kube.CoordinationV1().Leases(systemNS).Update(context.Background(), le, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("handing Lease %s to %s: %v", name, to, err)
	}
}

// replicaLogged says whether replica i logged a line with what about lease.
func replicaLogged(i int, what, lease string) bool {
	for _, line := range strings.Split(replicaLog(i), "\n") {
		if strings.Contains(line, what) && strings.Contains(line, lease) {
			return true
		}
	}
	return false
}

// handover gives every other bucket Lease (by name) to the identity to,
// fresh, and waits until the replica of from logged that it stopped leading
// them and the replica of to that it started, and the Leases show half of
// the buckets held by each.
func handover(t *testing.T, holders map[string]string, from, to string) {
	t.Helper()
	names := make([]string, 0, len(holders))
	for n := range holders {
		names = append(names, n)
	}
	sort.Strings(names)
	var moved []string
	for i, n := range names {
		if i%2 == 1 {
			continue
		}
		moved = append(moved, n)
		handLease(t, n, to)
	}
	deadline := time.Now().Add(renewDeadline + 3*leaseRetry + 5*time.Second)
	for {
		ok := true
		for _, n := range moved {
			ok = ok && replicaLogged(1, "has stopped leading", n) && replicaLogged(2, "has started leading", n)
		}
		held := countHeld(bucketHolders(t))
		if ok && held[to] == len(moved) && held[from] == leaseBuckets-len(moved) {
			t.Logf("handed %d buckets to replica 2: %v", len(moved), held)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the handover of %v to %s did not settle (both logged: %v): %v", moved, to, ok, held)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// opsDone sums cicdstatemgr_ops_total{op="set",...} of the /metrics at url.
func opsDone(t *testing.T, url string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "cicdstatemgr_ops_total{") || !strings.Contains(line, `op="set"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum += v
	}
	return sum
}

// TestReplicasOneKilledDuring200Runs: two controller replicas with leader
// election (10 buckets), both holding buckets (half handed to replica 2, see
// handover) and both applying runs of the batch; replica 2 is SIGKILLed while 200 set runs append to one context.
// Replica 1 takes over every bucket within lease-duration + two
// retry-periods (with client-go's jitter, plus a margin), every run succeeds, every value is
// in the list exactly once: nothing lost, nothing applied twice. The stack
// goes back to its single replica (--disable-ha) at the end.
func TestReplicasOneKilledDuring200Runs(t *testing.T) {
	if err := stack("stop-controller"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stack("stop-controller")
		if err := stack("start-controller"); err != nil {
			t.Errorf("restoring the single replica: %v", err)
		}
	})
	two := map[string]string{"CONTROLLER_REPLICAS": "2"}

	if err := stackWith(two, "start-controller"); err != nil {
		t.Fatal(err)
	}
	id1, id2 := replicaID(t, 1), replicaID(t, 2)
	if id1 == id2 {
		t.Fatalf("both replicas elect with the identity %q", id1)
	}
	var holders map[string]string
	deadline := time.Now().Add(leaseDuration + 2*leaseRetry)
	for {
		holders = bucketHolders(t)
		held := countHeld(holders)
		if held[id1]+held[id2] == leaseBuckets {
			t.Logf("after the start: replica 1 (%s) holds %d buckets, replica 2 (%s) %d", id1, held[id1], id2, held[id2])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two replicas hold %d of the %d buckets %s after starting: %v", held[id1]+held[id2], leaseBuckets, leaseDuration+2*leaseRetry, held)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Buckets are first come, first served: the replica whose electors ran
	// first usually holds all ten, the other waits as a standby. For the kill
	// to move buckets that a live replica was working on, half of them are
	// handed to replica 2 through the Lease API, as a holder's own update
	// would (replica 1 then fails to renew them and steps down after
	// renew-deadline), and the test waits until both logged the change.
	handover(t, holders, id1, id2)

	ns := namespace(t, "replicas")
	id := ns + "-ctx"
	initContext(t, ns, id)
	runs, values := setBatch("add", id, batchSize, runTimeout)
	var killedAt time.Time
	var takeover time.Duration
	var applied2 float64
	final := faultMidway(t, ns, "add", runs, 25*time.Millisecond, 50, func() {
		applied2 = opsDone(t, replicaProbeURL(t, 2))
		if err := stack("stop-controller", "--kill", "2"); err != nil {
			t.Fatal(err)
		}
		killedAt = time.Now()
		mustBeDown(t, strings.TrimPrefix(replicaProbeURL(t, 2), "http://"))
	}, func() {
		// replica 1 takes every bucket over once replica 2's Leases expire
		for {
			held := countHeld(bucketHolders(t))
			if held[id1] == leaseBuckets {
				takeover = time.Since(killedAt)
				return
			}
			if time.Since(killedAt) > 2*leaseDuration {
				t.Fatalf("replica 1 holds %d of %d buckets %s after replica 2 was killed: %v", held[id1], leaseBuckets, time.Since(killedAt).Round(time.Millisecond), held)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// A survivor sees a Lease expire lease-duration after it last saw the
	// record change (it looks every retry-period, plus up to 20 % jitter, so
	// up to 2.4 s after the holder's last renewal), and tries again one
	// retry-period (+ jitter) later: lease-duration + 2 × 2.4 s, plus 3 s
	// for a loaded API server.
	limit := leaseDuration + 2*leaseRetry*12/10 + 3*time.Second
	t.Logf("replica 2 had applied %v set ops when it was killed; replica 1 held every bucket %s after the kill (limit %s)", applied2, takeover.Round(time.Millisecond), limit)
	if applied2 == 0 {
		t.Errorf("replica 2 applied no set op before it was killed: no bucket of the batch moved")
	}
	if takeover > limit {
		t.Errorf("replica 1 took the buckets over %s after the kill, more than lease-duration + retry-period (+ jitter and margin) %s", takeover.Round(time.Millisecond), limit)
	}
	var last time.Time
	for i := range final {
		if c := final[i].Status.CompletionTime; c != nil && c.Time.After(last) {
			last = c.Time
		}
	}
	// every run ends soon after the takeover (completion times have second precision)
	if end := last.Sub(killedAt); end > limit+30*time.Second {
		t.Errorf("the last run completed %s after the kill, want within %s", end.Round(time.Second), limit+30*time.Second)
	} else {
		t.Logf("the last run completed %s after the kill", end.Round(time.Second))
	}
	list := items(t, ns, id)
	checkBatch(t, final, values, list, nil)
	if len(list) != batchSize {
		t.Errorf("state.items holds %d values, want %d", len(list), batchSize)
	}
	t.Logf("%d values in state.items; %d runs completed from the record of an earlier attempt", len(list), replayed(final))
}

// gatherBuckets hands every bucket Lease that replica toReplica (identity to, one
// of two) does not hold to it, fresh, and waits until it holds all of them and
// both replicas logged the change of each.
func gatherBuckets(t *testing.T, to string, toReplica int) {
	t.Helper()
	var moved []string
	for name, holder := range bucketHolders(t) {
		if holder == to {
			continue
		}
		moved = append(moved, name)
		handLease(t, name, to)
	}
	deadline := time.Now().Add(renewDeadline + 3*leaseRetry + 5*time.Second)
	for {
		ok := countHeld(bucketHolders(t))[to] == leaseBuckets
		for _, n := range moved {
			// the other replica (3 - toReplica) must have let go of it too
			ok = ok && replicaLogged(toReplica, "has started leading", n) && replicaLogged(3-toReplica, "has stopped leading", n)
		}
		if ok {
			t.Logf("replica %d holds all %d buckets (%d handed over)", toReplica, leaseBuckets, len(moved))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d does not hold every bucket after the handover: %v", toReplica, countHeld(bucketHolders(t)))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestReplicasGateDecidedThroughTheOther: two replicas; replica 2 holds every
// bucket, so its CustomRun waits on a manual-choice gate. Replica 2 is
// SIGKILLed; a signed Slack click reaches replica 1's endpoint while no live
// replica owns the waiting CustomRun, and is accepted. Once replica 1 takes the
// buckets over, the CustomRun ends with that decision and the PipelineRun
// succeeds with it: a gate decision needs no particular replica.
func TestReplicasGateDecidedThroughTheOther(t *testing.T) {
	if err := stack("stop-controller"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stack("stop-controller")
		if err := stack("start-controller"); err != nil {
			t.Errorf("restoring the single replica: %v", err)
		}
	})
	if err := stackWith(map[string]string{"CONTROLLER_REPLICAS": "2"}, "start-controller"); err != nil {
		t.Fatal(err)
	}
	id1, id2 := replicaID(t, 1), replicaID(t, 2)
	for deadline := time.Now().Add(leaseDuration + 2*leaseRetry); ; time.Sleep(200 * time.Millisecond) {
		held := countHeld(bucketHolders(t))
		if held[id1]+held[id2] == leaseBuckets {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two replicas hold %v of the %d buckets after starting", held, leaseBuckets)
		}
	}
	gatherBuckets(t, id2, 2)

	startFakeSlack(t)
	ns := namespace(t, "replicagate")
	kubectl(t, gatePipeline, "-n", ns, "apply", "-f", "-")
	kubectl(t, pipelineRun("release-1", "release", map[string]string{"id": ns + "-ctx"}), "-n", ns, "create", "-f", "-")
	waitCustomRunReason(t, ns, "tekton.dev/pipelineTask=approve", "WaitingForDecision", 60*time.Second)

	if err := stack("stop-controller", "--kill", "2"); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	mustBeDown(t, strings.TrimPrefix(replicaProbeURL(t, 2), "http://"))
	// replica 1 (ctrlURL) owns no bucket yet: the click only records the decision
	if held := countHeld(bucketHolders(t)); held[id1] != 0 {
		t.Fatalf("replica 1 already holds %d buckets right after the kill: the decision would not cross replicas", held[id1])
	}
	if code, body := newClick("ship", aliceID, "alice", time.Now(), true).send(t); code != http.StatusOK {
		t.Fatalf("signed click through replica 1: %d %s", code, body)
	}
	if cr := customRunOf(t, ns, "release-1", "approve"); cr.IsDone() {
		t.Fatalf("the CustomRun of the dead replica ended before any replica owned it: %+v", cr.Status.Conditions)
	}
	pr := waitPipelineRun(t, ns, "release-1", 2*leaseDuration+30*time.Second)
	succeeded(t, pr)
	t.Logf("the PipelineRun succeeded %s after replica 2 was killed", time.Since(killedAt).Round(time.Second))
	got := prResults(pr)
	for k, v := range map[string]string{"choice": "ship", "chosen-by": aliceID, "recorded": "ship"} {
		if got[k] != v {
			t.Errorf("result %s = %q, want %q", k, got[k], v)
		}
	}
	// the run's bucket moved; the others expire within a retry period or two of it
	for {
		held := countHeld(bucketHolders(t))
		if held[id1] == leaseBuckets {
			t.Logf("replica 1 held every bucket %s after the kill", time.Since(killedAt).Round(time.Second))
			break
		}
		if time.Since(killedAt) > 2*leaseDuration {
			t.Fatalf("replica 1 holds %d of %d buckets %s after the kill", held[id1], leaseBuckets, time.Since(killedAt).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
