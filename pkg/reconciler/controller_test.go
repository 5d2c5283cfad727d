package reconciler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tkncontroller "github.com/tektoncd/pipeline/pkg/controller"
	ttesting "github.com/tektoncd/pipeline/pkg/reconciler/testing"
	"github.com/tektoncd/pipeline/test"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	testclock "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	kreconciler "knative.dev/pkg/reconciler"
)

// TestControllerReconcilesThroughTheGeneratedReconciler drives the whole
// controller (generated CustomRun reconciler, informers, status update,
// events) against fake clientsets, and reads the outcome back from them.
func TestControllerReconcilesThroughTheGeneratedReconciler(t *testing.T) {
	src, _ := newSource(t, redisSrv.Addr)
	seedContext(t, src)
	good := parseRun(t, fmt.Sprintf(header, "uid-good")+`  params: [{name: op, value: get}, {name: id, value: ctx-1}, {name: get, value: [k=state.k]}]`)
	bad := parseRun(t, fmt.Sprintf(header, "uid-bad")+`  params: [{name: op, value: get}, {name: id, value: ctx-1}]`)
	bad.Name = "bad"
	foreign := parseRun(t, `metadata: {name: foreign, namespace: ns, uid: uid-f}
spec:
  customRef: {apiVersion: example.dev/v1, kind: Other}`)

	ctx, _ := ttesting.SetupFakeContext(t)
	clients, _ := test.SeedTestData(t, ctx, test.Data{
		CustomRuns: []*v1beta1.CustomRun{good, bad, foreign},
		ConfigMaps: []*corev1.ConfigMap{appConfigMap()},
	})
	impl := NewController(Options{Source: src, Clock: testclock.NewFakePassiveClock(now)})(ctx, configmap.NewStaticWatcher())
	recorder := controller.GetEventRecorder(ctx).(*record.FakeRecorder)
	// a single replica is the leader of every bucket
	if la, ok := impl.Reconciler.(kreconciler.LeaderAware); ok {
		if err := la.Promote(kreconciler.UniversalBucket(), func(kreconciler.Bucket, types.NamespacedName) {}); err != nil {
			t.Fatal(err)
		}
	}

	for _, key := range []string{"ns/run", "ns/bad"} {
		if err := impl.Reconciler.Reconcile(ctx, key); err != nil {
			t.Fatalf("reconcile %s: %v", key, err)
		}
	}
	got := func(name string) *v1beta1.CustomRun {
		r, err := clients.Pipeline.TektonV1beta1().CustomRuns("ns").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	run := got("run")
	if c := run.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() || c.Reason != ReasonSucceeded {
		t.Fatalf("run condition %+v", c)
	}
	if len(run.Status.Results) != 2 || run.Status.Results[0].Value != "ctx-1" || run.Status.Results[1].Value != "v" {
		t.Fatalf("run results %+v", run.Status.Results)
	}
	b := got("bad")
	if c := b.Status.GetCondition(apis.ConditionSucceeded); !c.IsFalse() || c.Reason != "InvalidParams" || !strings.Contains(c.Message, `needs param "get"`) {
		t.Fatalf("bad condition %+v", c)
	}
	// the informer filter keeps other custom tasks out of our queue
	if filter := tkncontroller.FilterCustomRunRef(APIVersion, Kind); filter(foreign) || !filter(good) {
		t.Fatal("the informer filter does not select exactly our CustomRuns")
	}
	var events []string
	for len(recorder.Events) > 0 {
		events = append(events, <-recorder.Events)
	}
	joined := strings.Join(events, "\n")
	// a failure has its event; a success none (no Started, no Succeeded):
	// an event per op would be an API write per CustomRun
	if len(events) != 1 || !strings.Contains(joined, "Warning InvalidParams op get needs param") {
		t.Errorf("want exactly the InvalidParams event, got:\n%s", joined)
	}
}
