package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
)

// Helpers of the fault tests (fault_test.go): batches of CustomRuns created
// directly, reading the stack's Redis with the CLI, restarting parts of the
// stack with extra environment.

const (
	redisUser     = "cicdstatemgr"
	redisPassword = "123$aBcZ"
	batchLabel    = "e2e.cicdstatemgr.dev/batch"
)

// stackWith runs hack/stack.sh like stack, with extra environment (e.g.
// CONTROLLER_ARGS for start-controller).
func stackWith(env map[string]string, args ...string) error {
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "hack", "stack.sh")}, args...)...)
	cmd.Env = os.Environ()
	for k, v := range stackEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

func strParam(name, value string) v1beta1.Param {
	return v1beta1.Param{Name: name, Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeString, StringVal: value}}
}

func arrParam(name string, values ...string) v1beta1.Param {
	return v1beta1.Param{Name: name, Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: values}}
}

// customRun is a CicdState CustomRun of a batch.
func customRun(name, batch string, timeout time.Duration, params ...v1beta1.Param) *v1beta1.CustomRun {
	return &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{batchLabel: batch}},
		Spec: v1beta1.CustomRunSpec{
			CustomRef: &v1beta1.TaskRef{APIVersion: "cicdstatemgr.dev/v1alpha1", Kind: "CicdState"},
			Params:    params,
			Timeout:   &metav1.Duration{Duration: timeout},
		},
	}
}

// runOne creates a CustomRun and waits until it is done.
func runOne(t *testing.T, ns string, cr *v1beta1.CustomRun, timeout time.Duration) *v1beta1.CustomRun {
	t.Helper()
	if _, err := tekton.TektonV1beta1().CustomRuns(ns).Create(context.Background(), cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		got, err := tekton.TektonV1beta1().CustomRuns(ns).Get(context.Background(), cr.Name, metav1.GetOptions{})
		if err == nil && got.IsDone() {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("CustomRun %s/%s not done after %s: %v\n%s", ns, cr.Name, timeout, err, controllerLogTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// initContext creates the context id with an empty state.items list.
func initContext(t *testing.T, ns, id string) {
	t.Helper()
	initContextBy(t, ns, id, "init")
}

// initContextBy is initContext by the CustomRun named run (one per context of
// a namespace).
func initContextBy(t *testing.T, ns, id, run string) {
	t.Helper()
	cr := runOne(t, ns, customRun(run, "init", time.Minute,
		strParam("op", "init"), strParam("id", id),
		strParam("app-config", "cicd-contexts: {stage: {channel: faults}}"),
		arrParam("set-yaml", "state.items=[]")), time.Minute)
	if !cr.IsSuccessful() {
		c := cr.Status.GetCondition(apis.ConditionSucceeded)
		t.Fatalf("init of %s: %s: %s", id, c.Reason, c.Message)
	}
}

// setBatch is n `set` CustomRuns, run i appending "v<i>" to state.items of
// the context id. It returns the value of each run by name.
func setBatch(batch, id string, n int, timeout time.Duration) ([]*v1beta1.CustomRun, map[string]string) {
	runs, values, _ := setBatchOver(batch, []string{id}, n, timeout)
	return runs, values
}

// setBatchOver is setBatch over several contexts: run i appends "v<i>" to
// state.items of ids[i % len(ids)]. It also returns the context of each run
// by name.
func setBatchOver(batch string, ids []string, n int, timeout time.Duration) ([]*v1beta1.CustomRun, map[string]string, map[string]string) {
	runs := make([]*v1beta1.CustomRun, n)
	values, contexts := map[string]string{}, map[string]string{}
	for i := range runs {
		name, value, id := fmt.Sprintf("%s-%03d", batch, i+1), fmt.Sprintf("v%03d", i+1), ids[i%len(ids)]
		runs[i] = customRun(name, batch, timeout, strParam("op", "set"), strParam("id", id),
			arrParam("set", "state.items[]="+value))
		values[name], contexts[name] = value, id
	}
	return runs, values, contexts
}

// runsOn is the runs (and their values) whose context is id.
func runsOn(id string, runs []v1beta1.CustomRun, values, contexts map[string]string) ([]v1beta1.CustomRun, map[string]string) {
	var mine []v1beta1.CustomRun
	vals := map[string]string{}
	for i := range runs {
		if contexts[runs[i].Name] == id {
			mine = append(mine, runs[i])
		}
	}
	for name, v := range values {
		if contexts[name] == id {
			vals[name] = v
		}
	}
	return mine, vals
}

// createAll creates the objects concurrently (8 at a time, the client's QPS
// limit paces them) and returns the first error.
func createAll(n int, create func(i int) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := create(i); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// createRuns creates the runs in the background, one every pace (0: as
// fast as the client allows); the channel yields the outcome once every
// create returned.
func createRuns(ns string, runs []*v1beta1.CustomRun, pace time.Duration) <-chan error {
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- createAll(len(runs), func(i int) error {
			if pace > 0 {
				time.Sleep(time.Until(start.Add(time.Duration(i) * pace)))
			}
			_, err := tekton.TektonV1beta1().CustomRuns(ns).Create(context.Background(), runs[i], metav1.CreateOptions{})
			return err
		})
	}()
	return done
}

func listBatch(ns, batch string) ([]v1beta1.CustomRun, error) {
	l, err := tekton.TektonV1beta1().CustomRuns(ns).List(context.Background(), metav1.ListOptions{LabelSelector: batchLabel + "=" + batch})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

func countDone(runs []v1beta1.CustomRun) int {
	n := 0
	for i := range runs {
		if runs[i].IsDone() {
			n++
		}
	}
	return n
}

// waitDone waits until at least `want` CustomRuns of the batch are done and
// returns the batch.
func waitDone(t *testing.T, ns, batch string, want int, timeout time.Duration) []v1beta1.CustomRun {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		runs, err := listBatch(ns, batch)
		if err == nil && countDone(runs) >= want {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the CustomRuns of batch %s done after %s, want %d: %v\n%s\n%s",
				countDone(runs), batch, timeout, want, err, summarize(runs), controllerLogTail())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// summarize counts the runs by status and reason.
func summarize(runs []v1beta1.CustomRun) string {
	by := map[string]int{}
	for i := range runs {
		c := runs[i].Status.GetCondition(apis.ConditionSucceeded)
		k := "no condition"
		if c != nil {
			k = string(c.Status) + "/" + c.Reason
		}
		by[k]++
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %d\n", k, by[k])
	}
	return b.String()
}

func controllerLogTail() string {
	log, _ := os.ReadFile(filepath.Join(stackEnv["CLUSTER_DIR"], "logs", "cicdstatemgr-controller.log"))
	if len(log) > 3000 {
		log = log[len(log)-3000:]
	}
	return "controller log tail:\n" + string(log)
}

// cliGet prints the value at path of the context id of namespace ns with the
// CLI binary.
func cliGet(t *testing.T, ns, id, path string) string {
	t.Helper()
	return cli(t, "--namespace", ns, "--id", id, "--get", path)
}

// cli runs the CLI binary against the stack's Redis (the same config and
// secrets as the controller) and returns its stdout; a failure fails the test.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := cliRun(t, args...)
	if err != nil {
		t.Fatalf("cicdstatemgr %v: %v\n%s", args, err, stderr)
	}
	return out
}

// cliRun is cli that returns the CLI's failure (with its stderr) instead.
func cliRun(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	host, port, _ := strings.Cut(redisAdr, ":")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	sec := filepath.Join(dir, "secrets.yaml")
	ds := fmt.Sprintf("{host: %s, port: %s, isPrimary: true}", host, port)
	if redisDatasource != "" { // the stack's topology (hack/stack.sh REDIS_TOPOLOGY)
		ds = redisDatasource
	}
	os.WriteFile(cfg, []byte("cicdstatemgr:\n  datasources:\n    redis: "+ds+"\n"), 0o600)
	login := fmt.Sprintf("username: %s, password: %q", redisUser, redisPassword)
	if stackIsSentinel() { // the sentinels have the same ACL user
		login += ", sentinel: {" + login + "}"
	}
	os.WriteFile(sec, []byte("cicdstatemgr:\n  datasources:\n    redis: {"+login+"}\n"), 0o600)
	bin := filepath.Join(root, ".cache", "bin", "cicdstatemgr")
	full := append([]string{"--config", cfg, "--secrets", sec}, args...)
	if len(args) > 0 && (args[0] == "decide" || args[0] == "migrate" || args[0] == "history") {
		full = append([]string{args[0], "--config", cfg, "--secrets", sec}, args[1:]...)
	}
	cmd := exec.Command(bin, full...)
	cmd.Env = append(os.Environ(), "CICDSTATEMGR_CONFIG_PATH=", "CICDSTATEMGR_SECRETS_PATH=")
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	return strings.TrimRight(string(out), "\n"), errb.String(), err
}

// items reads state.items of the context id of namespace ns with the CLI.
func items(t *testing.T, ns, id string) []string {
	t.Helper()
	out := cliGet(t, ns, id, "state.items")
	var list []string
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("state.items of %s is not a JSON list of strings: %v\n%s", id, err, out)
	}
	return list
}

// checkBatch asserts what every fault test promises about a batch of set
// runs, each appending values[run name] once:
//   - every run is done; a failed run has a reason and a message;
//   - no value is in the list twice (nothing applied twice) and no value
//     the batch did not write is in it;
//   - the value of every Succeeded run is in the list (nothing lost),
//     except for runs mayLose accepts (nil: none).
//
// The faults of these tests last far shorter than the runs' timeout, so a
// failed run is an error too (reported with its reason).
func checkBatch(t *testing.T, runs []v1beta1.CustomRun, values map[string]string, list []string, mayLose func(*v1beta1.CustomRun) bool) (lost int) {
	t.Helper()
	count := map[string]int{}
	written := map[string]bool{}
	for _, v := range values {
		written[v] = true
	}
	for _, v := range list {
		count[v]++
		if !written[v] {
			t.Errorf("state.items holds %q, which no run of the batch wrote", v)
		}
	}
	for v, n := range count {
		if n > 1 {
			t.Errorf("value %q is in state.items %d times: applied twice", v, n)
		}
	}
	if len(runs) != len(values) {
		t.Errorf("%d runs in the batch, want %d", len(runs), len(values))
	}
	var failed []string
	for i := range runs {
		cr := &runs[i]
		c := cr.Status.GetCondition(apis.ConditionSucceeded)
		switch {
		case c == nil || c.IsUnknown():
			t.Errorf("CustomRun %s is not done: %+v", cr.Name, c)
		case c.IsFalse():
			if c.Reason == "" || c.Reason == "Running" || c.Reason == "Retrying" || strings.TrimSpace(c.Message) == "" {
				t.Errorf("CustomRun %s failed without a clear reason: %q %q", cr.Name, c.Reason, c.Message)
			}
			failed = append(failed, fmt.Sprintf("%s: %s: %s", cr.Name, c.Reason, c.Message))
		case count[values[cr.Name]] == 0:
			if mayLose != nil && mayLose(cr) {
				lost++
				continue
			}
			t.Errorf("CustomRun %s succeeded (%s) but its value %s is not in state.items: lost", cr.Name, c.Message, values[cr.Name])
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d runs failed although every fault was shorter than their timeout:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	return lost
}

// replayed counts the runs whose success was the record of an earlier
// attempt (the controller's exactly-once path).
func replayed(runs []v1beta1.CustomRun) int {
	n := 0
	for i := range runs {
		if c := runs[i].Status.GetCondition(apis.ConditionSucceeded); c != nil && c.Status == corev1.ConditionTrue && strings.Contains(c.Message, "earlier attempt") {
			n++
		}
	}
	return n
}

// mustBeDown fails the test when something still accepts connections on
// addr: the fault did not happen.
func mustBeDown(t *testing.T, addr string) {
	t.Helper()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after the fault", addr)
	}
}

// redisMustBeDown is mustBeDown for every node of the stack's Redis.
func redisMustBeDown(t *testing.T) {
	t.Helper()
	for _, n := range redisNodes {
		mustBeDown(t, n)
	}
}

// metric reads one sample (name with its labels, as exposed) from the
// controller's /metrics.
func metric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get(probeURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", sample, err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not exposed by %s/metrics", sample, probeURL)
	return 0
}
