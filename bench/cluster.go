package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	versioned "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"github.com/tektoncd/pipeline/pkg/client/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/pkg/apis"
)

// namespace holds every object the bench creates.
const namespace = "bench"

// labelPhase names the phase an object belongs to (for DeleteCollection).
const labelPhase = "bench.cicdstatemgr.dev/phase"

// op is what one CustomRun does.
type op string

const (
	opSet    op = "set"
	opGet    op = "get"
	opInit   op = "init"
	opNotify op = "notify"
	opCopy   op = "baseline" // the baseline controller's Copy
)

var allOps = []op{opSet, opGet, opInit, opNotify, opCopy}

// contexts is the number of cicd contexts set, get and notify spread over
// (worker w of a phase uses context w): no two runs in flight share one.
const contexts = 100

// appConfig is the app config of every context: a notify handler for event
// p=ev, posting to the stack's slack.url (our echo server).
const appConfig = `cicd-contexts:
  stage:
    channel: bench
    pipelines:
      p:
        event-handlers:
          ev:
            notify:
              message: "bench {{ state.key1 }}"
`

// runTimeout bounds the wait for one CustomRun.
const runTimeout = 2 * time.Minute

type cluster struct {
	env     *benchEnv
	tekton  versioned.Interface
	kube    kubernetes.Interface
	stop    chan struct{}
	runs    *tracker // CustomRuns
	prs     *tracker // PipelineRuns
	echoSrv *http.Server
	posts   atomic.Int64
	hang    hangingEndpoint // /slow of the echo server (hostile.go)

	baseline *exec.Cmd
	baseDone chan struct{}
}

// tracker hands the completion of an object (seen by an informer) to the
// goroutine waiting for it.
type tracker struct {
	mu      sync.Mutex
	pending map[string]chan done
}

type done struct {
	at     time.Time
	ok     bool
	reason string
}

func newTracker() *tracker { return &tracker{pending: map[string]chan done{}} }

func (t *tracker) expect(name string) chan done {
	ch := make(chan done, 1)
	t.mu.Lock()
	t.pending[name] = ch
	t.mu.Unlock()
	return ch
}

func (t *tracker) forget(name string) {
	t.mu.Lock()
	delete(t.pending, name)
	t.mu.Unlock()
}

func (t *tracker) finished(name string, c *apis.Condition) {
	if c == nil || c.IsUnknown() {
		return
	}
	now := time.Now()
	t.mu.Lock()
	ch := t.pending[name]
	delete(t.pending, name)
	t.mu.Unlock()
	if ch != nil {
		ch <- done{at: now, ok: c.IsTrue(), reason: c.Reason + ": " + c.Message}
	}
}

func newCluster(ctx context.Context, env *benchEnv) (*cluster, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", env.kubeconfig)
	if err != nil {
		return nil, err
	}
	// the load generator must not be the bottleneck
	cfg.QPS, cfg.Burst = 2000, 4000
	c := &cluster{env: env, stop: make(chan struct{}), runs: newTracker(), prs: newTracker()}
	if c.tekton, err = versioned.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if c.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	_, err = c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	if err := c.deleteAll(ctx, ""); err != nil {
		return nil, err
	}
	if err := c.startEcho(); err != nil {
		return nil, err
	}
	f := externalversions.NewSharedInformerFactoryWithOptions(c.tekton, 0, externalversions.WithNamespace(namespace))
	crInf := f.Tekton().V1beta1().CustomRuns().Informer()
	onCR := c.onCustomRun
	prInf := f.Tekton().V1().PipelineRuns().Informer()
	onPR := func(obj any) {
		if pr, ok := obj.(*v1.PipelineRun); ok {
			c.prs.finished(pr.Name, pr.Status.GetCondition(apis.ConditionSucceeded))
		}
	}
	for inf, fn := range map[cache.SharedIndexInformer]func(any){crInf: onCR, prInf: onPR} {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    fn,
			UpdateFunc: func(_, obj any) { fn(obj) },
		}); err != nil {
			return nil, err
		}
	}
	f.Start(c.stop)
	for typ, ok := range f.WaitForCacheSync(c.stop) {
		if !ok {
			return nil, fmt.Errorf("informer of %v did not sync", typ)
		}
	}
	return c, nil
}

// onCustomRun hands a CustomRun seen by an informer to c.runs.
func (c *cluster) onCustomRun(obj any) {
	if cr, ok := obj.(*v1beta1.CustomRun); ok {
		c.runs.finished(cr.Name, cr.Status.GetCondition(apis.ConditionSucceeded))
	}
}

// errRunTimeout: a CustomRun was not done within the wait of createAndWait.
var errRunTimeout = errors.New("not done in time")

// createAndWait creates cr (in its namespace) and waits until an informer
// sees it done. lat is from just before the Create call to that sight. err
// is the Create's error, errRunTimeout after timeout, or the context's.
func (c *cluster) createAndWait(ctx context.Context, cr *v1beta1.CustomRun, timeout time.Duration) (d done, lat time.Duration, err error) {
	ch := c.runs.expect(cr.Name)
	t0 := time.Now()
	if _, err := c.tekton.TektonV1beta1().CustomRuns(cr.Namespace).Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		c.runs.forget(cr.Name)
		return done{}, 0, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case d := <-ch:
		return d, d.at.Sub(t0), nil
	case <-timer.C:
		c.runs.forget(cr.Name)
		return done{}, 0, errRunTimeout
	case <-ctx.Done():
		c.runs.forget(cr.Name)
		return done{}, 0, ctx.Err()
	}
}

func (c *cluster) close() {
	close(c.stop)
	c.stopBaseline()
	if c.echoSrv != nil {
		c.echoSrv.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.deleteAll(ctx, ""); err != nil {
		log.Printf("cleanup: %v", err)
	}
}

// startEcho serves slack.url of the stack's config (hack/stack.sh
// apply_config): it answers like chat.postMessage. /slow hangs while the
// hostile load runs (hangingEndpoint).
func (c *cluster) startEcho() error {
	ln, err := net.Listen("tcp", "127.0.0.1:"+c.env.echoPort)
	if err != nil {
		return fmt.Errorf("echo server: %w", err)
	}
	c.echoSrv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/slow" {
			c.hang.hang(r)
		} else {
			c.posts.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok": true, "channel": "C0BENCH", "ts": "1700000000.000100"}`)
	})}
	go c.echoSrv.Serve(ln)
	return nil
}

// deleteAll deletes the CustomRuns and PipelineRuns of a phase ("": all of
// the namespace, including the CustomRuns of PipelineRuns, which nothing
// garbage-collects here: no kube-controller-manager runs).
func (c *cluster) deleteAll(ctx context.Context, phase string) error {
	sel := ""
	if phase != "" {
		sel = labelPhase + "=" + phase
	}
	lo := metav1.ListOptions{LabelSelector: sel}
	if err := c.tekton.TektonV1().PipelineRuns(namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, lo); err != nil {
		return fmt.Errorf("deleting PipelineRuns %s: %w", sel, err)
	}
	if err := c.tekton.TektonV1beta1().CustomRuns(namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, lo); err != nil {
		return fmt.Errorf("deleting CustomRuns %s: %w", sel, err)
	}
	return nil
}

func strParam(name, value string) v1beta1.Param {
	return v1beta1.Param{Name: name, Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeString, StringVal: value}}
}

func arrParam(name string, values ...string) v1beta1.Param {
	return v1beta1.Param{Name: name, Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: values}}
}

// customRun is run i of a phase, by worker w.
func customRun(phase string, o op, w, i int) *v1beta1.CustomRun {
	ref := &v1beta1.TaskRef{APIVersion: "cicdstatemgr.dev/v1alpha1", Kind: "CicdState"}
	ctxID := fmt.Sprintf("w-%d", w%contexts)
	var params v1beta1.Params
	switch o {
	case opSet:
		params = v1beta1.Params{strParam("op", "set"), strParam("id", ctxID), arrParam("set", fmt.Sprintf("state.key1=v%d", i))}
	case opGet:
		params = v1beta1.Params{strParam("op", "get"), strParam("id", ctxID), arrParam("get", "v=state.key1")}
	case opInit:
		params = v1beta1.Params{strParam("op", "init"), strParam("id", fmt.Sprintf("%s-%d", phase, i)), strParam("app-config", appConfig),
			arrParam("set", fmt.Sprintf("state.key1=v%d", i))}
	case opNotify:
		params = v1beta1.Params{strParam("op", "handle-event"), strParam("id", ctxID), strParam("event", "p=ev")}
	case opCopy:
		ref = &v1beta1.TaskRef{APIVersion: "bench.cicdstatemgr.dev/v1alpha1", Kind: "Copy"}
		params = v1beta1.Params{strParam("value", fmt.Sprintf("v%d", i))}
	}
	return &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", phase, i), Namespace: namespace, Labels: map[string]string{labelPhase: phase}},
		Spec:       v1beta1.CustomRunSpec{CustomRef: ref, Params: params},
	}
}

// phaseResult is what one phase measured.
type phaseResult struct {
	name     string
	op       op
	inFlight int
	threads  int // 0: the default
	lat      []time.Duration
	wall     time.Duration
	failed   int // Succeeded=False
	timedOut int
	errors   int // create failed
	firstErr string
}

func (p *phaseResult) perSecond() float64 {
	if p.wall <= 0 {
		return 0
	}
	return float64(len(p.lat)) / p.wall.Seconds()
}

func (p *phaseResult) summary() string {
	s := summarize(p.lat)
	out := fmt.Sprintf("n=%d p50=%s p95=%s p99=%s %.1f/s", len(p.lat), ms(s.p50), ms(s.p95), ms(s.p99), p.perSecond())
	if bad := p.failed + p.timedOut + p.errors; bad > 0 {
		out += fmt.Sprintf(" (failed %d, timed out %d, create errors %d: %s)", p.failed, p.timedOut, p.errors, p.firstErr)
	}
	return out
}

// phase runs total CustomRuns of op with inFlight workers, each creating one
// run and waiting for its completion before the next. The latency of a run
// is from just before its Create call to the informer's sight of it done.
// The runs are deleted afterwards.
func (c *cluster) phase(ctx context.Context, name string, o op, inFlight, total int) (*phaseResult, error) {
	return c.runPhase(ctx, name, o, inFlight, total, false)
}

// runPhase is phase; keep leaves the runs in place.
func (c *cluster) runPhase(ctx context.Context, name string, o op, inFlight, total int, keep bool) (*phaseResult, error) {
	res := &phaseResult{name: name, op: o, inFlight: inFlight}
	var (
		next int64 = -1
		mu   sync.Mutex
		wg   sync.WaitGroup
		bad  atomic.Int64
	)
	note := func(f func()) {
		mu.Lock()
		f()
		mu.Unlock()
	}
	start := time.Now()
	for w := 0; w < inFlight; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil && bad.Load() < 10 {
				i := int(atomic.AddInt64(&next, 1))
				if i >= total {
					return
				}
				cr := customRun(name, o, w, i)
				d, lat, err := c.createAndWait(ctx, cr, runTimeout)
				switch {
				case ctx.Err() != nil:
					return
				case errors.Is(err, errRunTimeout):
					bad.Add(1)
					note(func() {
						res.timedOut++
						if res.firstErr == "" {
							res.firstErr = cr.Name + " not done after " + runTimeout.String()
						}
					})
				case err != nil:
					bad.Add(1)
					note(func() {
						res.errors++
						if res.firstErr == "" {
							res.firstErr = err.Error()
						}
					})
				default:
					note(func() {
						res.lat = append(res.lat, lat)
						if !d.ok {
							res.failed++
							bad.Add(1)
							if res.firstErr == "" {
								res.firstErr = cr.Name + ": " + d.reason
							}
						}
					})
				}
			}
		}(w)
	}
	wg.Wait()
	res.wall = time.Since(start)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if !keep {
		if err := c.deleteAll(ctx, name); err != nil {
			return res, err
		}
	}
	if bad.Load() >= 10 {
		return res, fmt.Errorf("phase %s: too many failures: %s", name, res.summary())
	}
	return res, nil
}

// warmUp creates the contexts w-0..w-99 (init through our controller) and
// runs the baseline once: both controllers are up and have their caches.
func (c *cluster) warmUp(ctx context.Context) error {
	log.Printf("warm-up: init of %d contexts through our controller, %d baseline runs", contexts, contexts)
	var waits []chan done
	for w := 0; w < contexts; w++ {
		cr := customRun("warmup", opInit, w, w)
		for i := range cr.Spec.Params {
			if cr.Spec.Params[i].Name == "id" {
				cr.Spec.Params[i].Value.StringVal = fmt.Sprintf("w-%d", w)
			}
		}
		ch := c.runs.expect(cr.Name)
		if _, err := c.tekton.TektonV1beta1().CustomRuns(namespace).Create(ctx, cr, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		defer c.runs.forget(cr.Name)
		if w == 0 { // the first one waits for the controller to be ready
			if err := waitDone(ctx, ch, time.Minute, "the first init"); err != nil {
				return err
			}
			continue
		}
		waits = append(waits, ch)
	}
	for _, ch := range waits {
		if err := waitDone(ctx, ch, runTimeout, "an init of the warm-up"); err != nil {
			return err
		}
	}
	if ph, err := c.phase(ctx, "warmup-base", opCopy, 10, contexts); err != nil {
		return fmt.Errorf("warm-up of the baseline: %w", err)
	} else if len(ph.lat) == 0 {
		return fmt.Errorf("warm-up of the baseline: nothing completed")
	}
	if ph, err := c.phase(ctx, "warmup-set", opSet, contexts, contexts); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	} else {
		log.Printf("warm-up done (set on every context: %s)", ph.summary())
	}
	return c.deleteAll(ctx, "warmup")
}

func waitDone(ctx context.Context, ch chan done, timeout time.Duration, what string) error {
	select {
	case d := <-ch:
		if !d.ok {
			return fmt.Errorf("%s failed: %s", what, d.reason)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s not done after %s", what, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stack runs hack/stack.sh with the bench environment (inherited) plus extra.
func (c *cluster) stack(ctx context.Context, extra []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(c.env.root, "hack", "stack.sh")}, args...)...)
	cmd.Env = append(os.Environ(), extra...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// restartController restarts our controller with CONTROLLER_ARGS=args and
// waits until it completes runs again.
func (c *cluster) restartController(ctx context.Context, args string) error {
	log.Printf("restarting our controller with CONTROLLER_ARGS=%q", args)
	if err := c.stack(ctx, nil, "stop-controller"); err != nil {
		return err
	}
	if err := c.stack(ctx, []string{"CONTROLLER_ARGS=" + args}, "start-controller"); err != nil {
		return err
	}
	name := fmt.Sprintf("restart-%d", time.Now().UnixNano()%1e9)
	ph, err := c.phase(ctx, name, opSet, 10, 50)
	if err != nil {
		return fmt.Errorf("after the restart: %w", err)
	}
	log.Printf("controller answers again (warm-up: %s)", ph.summary())
	return nil
}

// startBaseline starts bench/baseline with the admin kubeconfig; its pid goes
// to $CLUSTER_DIR/run/bench-baseline.pid (hack/bench.sh stops it on exit).
func (c *cluster) startBaseline(ctx context.Context) error {
	logDir := filepath.Join(c.env.clusterDir, "logs")
	runDir := filepath.Join(c.env.clusterDir, "run")
	os.MkdirAll(logDir, 0o755)
	os.MkdirAll(runDir, 0o755)
	logf, err := os.OpenFile(filepath.Join(logDir, "bench-baseline.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.env.baselineBin, "--kubeconfig", c.env.kubeconfig, "--disable-ha", "--threads=8")
	cmd.Env = append(os.Environ(), "SYSTEM_NAMESPACE=cicdstatemgr", "PROBES_PORT="+c.env.baselineProbes,
		"PROFILING_PORT="+c.env.baselineProfiling, "METRICS_PROTOCOL=none", "TRACING_PROTOCOL=none")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting the baseline: %w", err)
	}
	os.WriteFile(filepath.Join(runDir, "bench-baseline.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	c.baseline, c.baseDone = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(c.baseDone)
	}()
	log.Printf("started the baseline controller (pid %d, log %s)", cmd.Process.Pid, logf.Name())
	// ready when it completes a run
	cr := customRun("base-ready", opCopy, 0, 0)
	ch := c.runs.expect(cr.Name)
	defer c.runs.forget(cr.Name)
	if _, err := c.tekton.TektonV1beta1().CustomRuns(namespace).Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		return err
	}
	select {
	case d := <-ch:
		if !d.ok {
			return fmt.Errorf("the baseline failed a run: %s", d.reason)
		}
	case <-c.baseDone:
		return fmt.Errorf("the baseline controller exited; see %s", logf.Name())
	case <-time.After(time.Minute):
		return fmt.Errorf("the baseline controller completed no run within a minute; see %s", logf.Name())
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.deleteAll(ctx, "base-ready")
}

func (c *cluster) stopBaseline() {
	if c.baseline == nil {
		return
	}
	c.baseline.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.baseDone:
	case <-time.After(10 * time.Second):
		c.baseline.Process.Kill()
		<-c.baseDone
	}
	os.Remove(filepath.Join(c.env.clusterDir, "run", "bench-baseline.pid"))
	c.baseline = nil
}

// controllerPID is our controller's pid, from hack/stack.sh's pid file.
func (c *cluster) controllerPID() (int, error) {
	return c.pidOf("cicdstatemgr-controller")
}

// pidOf is the pid of a process of the stack (hack/lib.sh's $RUN_DIR/NAME.pid).
func (c *cluster) pidOf(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(c.env.clusterDir, "run", name+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// memory reads VmRSS and VmHWM (peak) of pid, in KiB.
func memory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
	}
	return rss, hwm, sc.Err()
}

// rssResult is the memory of our controller around n CustomRuns.
type rssResult struct {
	runs                      int
	before, after, peak, full int64 // KiB; full: with the n runs still there
	settle                    time.Duration
	phase                     *phaseResult
}

// interleaved runs perOp CustomRuns of each op one at a time, the ops in
// turn (set, get, init, notify, baseline, set, ...), so that whatever else
// the machine does hits every op alike. runs/s of each op is 1 ÷ its mean
// latency.
func (c *cluster) interleaved(ctx context.Context, name string, ops []op, perOp int) (map[op]*phaseResult, error) {
	out := map[op]*phaseResult{}
	for _, o := range ops {
		out[o] = &phaseResult{name: name, op: o, inFlight: 1}
	}
	bad := 0
	for i := 0; i < perOp*len(ops) && bad < 10; i++ {
		o := ops[i%len(ops)]
		res := out[o]
		cr := customRun(name, o, 0, i)
		d, lat, err := c.createAndWait(ctx, cr, runTimeout)
		switch {
		case ctx.Err() != nil:
			return out, ctx.Err()
		case errors.Is(err, errRunTimeout):
			bad++
			res.timedOut++
			res.firstErr = cr.Name + " not done after " + runTimeout.String()
		case err != nil:
			bad++
			res.errors++
			res.firstErr = err.Error()
		default:
			res.lat = append(res.lat, lat)
			res.wall += lat
			if !d.ok {
				bad++
				res.failed++
				res.firstErr = cr.Name + ": " + d.reason
			}
		}
	}
	if err := c.deleteAll(ctx, name); err != nil {
		return out, err
	}
	if bad >= 10 {
		return out, fmt.Errorf("phase %s: too many failures", name)
	}
	return out, nil
}

// merge adds the runs of q to p (rounds of the same op and number in flight).
func (p *phaseResult) merge(q *phaseResult) {
	p.lat = append(p.lat, q.lat...)
	p.wall += q.wall
	p.failed += q.failed
	p.timedOut += q.timedOut
	p.errors += q.errors
	if p.firstErr == "" {
		p.firstErr = q.firstErr
	}
}
