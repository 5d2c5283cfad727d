// Command baseline is the trivial custom task controller the benchmarks
// compare cicdstatemgr against: the same knative sharedmain and Tekton's
// generated CustomRun reconciler, filtered on apiVersion
// bench.cicdstatemgr.dev/v1alpha1 kind Copy. It copies the param "value" to
// the result "value" and succeeds. No Redis, no event, no config: what is left
// is the cost of the Kubernetes round trips every custom task pays.
//
//	SYSTEM_NAMESPACE=cicdstatemgr baseline --kubeconfig admin.kubeconfig --disable-ha --threads 8
package main

import (
	"context"
	"flag"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	customruninformer "github.com/tektoncd/pipeline/pkg/client/injection/informers/pipeline/v1beta1/customrun"
	customrunreconciler "github.com/tektoncd/pipeline/pkg/client/injection/reconciler/pipeline/v1beta1/customrun"
	tkncontroller "github.com/tektoncd/pipeline/pkg/controller"
	"k8s.io/client-go/tools/cache"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/injection/sharedmain"
	kreconciler "knative.dev/pkg/reconciler"
	"knative.dev/pkg/signals"
)

// The custom task the baseline owns.
const (
	APIVersion = "bench.cicdstatemgr.dev/v1alpha1"
	Kind       = "Copy"
)

type reconciler struct{}

// ReconcileKind copies params.value to results.value.
func (*reconciler) ReconcileKind(_ context.Context, run *v1beta1.CustomRun) kreconciler.Event {
	if run.IsDone() {
		return nil
	}
	if !run.HasStarted() {
		run.Status.InitializeConditions()
	}
	value := ""
	if p := run.Spec.GetParam("value"); p != nil {
		value = p.Value.StringVal
	}
	run.Status.Results = []v1beta1.CustomRunResult{{Name: "value", Value: value}}
	run.Status.MarkCustomRunSucceeded("Copied", "copied %d bytes", len(value))
	return nil
}

func newController(ctx context.Context, _ configmap.Watcher) *controller.Impl {
	impl := customrunreconciler.NewImpl(ctx, &reconciler{}, func(*controller.Impl) controller.Options {
		return controller.Options{AgentName: "bench-baseline"}
	})
	if _, err := customruninformer.Get(ctx).Informer().AddEventHandler(cache.FilteringResourceEventHandler{
		FilterFunc: tkncontroller.FilterCustomRunRef(APIVersion, Kind),
		Handler:    controller.HandleAll(impl.Enqueue),
	}); err != nil {
		panic(err)
	}
	return impl
}

func main() {
	threads := flag.Int("threads", 8, "reconcile workers (same default as cicdstatemgr's controller)")
	disableHA := flag.Bool("disable-ha", false, "run without leader election")
	cfg := injection.ParseAndGetRESTConfigOrDie()
	// The same client limits as cicdstatemgr's controller (cmd/controller),
	// so that the comparison is not one of rate limiters.
	if cfg.QPS == 0 {
		cfg.QPS = 50
	}
	if cfg.Burst == 0 {
		cfg.Burst = 100
	}
	controller.DefaultThreadsPerController = *threads
	// as cicdstatemgr's controller (cmd/controller): no knative probe server on :8080
	ctx := sharedmain.WithHealthProbesDisabled(signals.NewContext())
	if *disableHA {
		ctx = sharedmain.WithHADisabled(ctx)
	}
	sharedmain.MainWithConfig(ctx, "bench-baseline", cfg, newController)
}
