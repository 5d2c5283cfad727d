package reconciler

import (
	"context"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"knative.dev/pkg/injection/clients/dynamicclient"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/cloudevents"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"

	customruninformer "github.com/tektoncd/pipeline/pkg/client/injection/informers/pipeline/v1beta1/customrun"
	customrunreconciler "github.com/tektoncd/pipeline/pkg/client/injection/reconciler/pipeline/v1beta1/customrun"
	tkncontroller "github.com/tektoncd/pipeline/pkg/controller"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	kubeclient "knative.dev/pkg/client/injection/kube/client"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/logging"
)

// stripManagedFields drops metadata.managedFields from cached objects.
func stripManagedFields(obj any) (any, error) {
	if a, ok := obj.(interface {
		SetManagedFields([]metav1.ManagedFieldsEntry)
	}); ok {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

// ControllerName is the agent name on events and the leader-election lease.
const ControllerName = "cicdstatemgr-controller"

// Options configure NewController.
type Options struct {
	Source  EngineSource
	Metrics *Metrics
	Clock   clock.PassiveClock
	// Setup runs once with the controller's context and sharedmain's
	// ConfigMap watcher, before informers start (the configuration is
	// watched from here).
	Setup func(ctx context.Context, cmw configmap.Watcher) error
	// Waker, when set, receives the function that wakes the CustomRun
	// waiting on an approval gate key (called when a choice is made).
	Waker func(wake func(gateKey string))
	// Voter, when set, receives the function that records a Slack click as a
	// vote on the gate's ApprovalGate (gate.Store.Vote), once the controller
	// exists.
	Voter func(vote func(ctx context.Context, p gate.Gate, d gate.Decision) error)
	// GateMetrics, when set, counts approval gates (NewGateMetrics).
	GateMetrics *GateMetrics
	// CloudEvents, when set, receives the gate events (pkg/cloudevents).
	CloudEvents *cloudevents.Emitter
}

// NewController returns the constructor sharedmain runs.
func NewController(o Options) injection.ControllerConstructor {
	return func(ctx context.Context, cmw configmap.Watcher) *controller.Impl {
		if o.Setup != nil {
			if err := o.Setup(ctx, cmw); err != nil {
				panic(err)
			}
		}
		clk := o.Clock
		if clk == nil {
			clk = clock.RealClock{}
		}
		r := &Reconciler{Clock: clk, Source: o.Source, KubeClient: kubeclient.Get(ctx), Metrics: o.Metrics, CloudEvents: o.CloudEvents}
		// our own event recorder (recorder.go); table tests bring a fake one
		if controller.GetEventRecorder(ctx) == nil {
			ctx = controller.WithEventRecorder(ctx, newEventRecorder(ctx, r.KubeClient))
		}
		impl := customrunreconciler.NewImpl(ctx, r, func(*controller.Impl) controller.Options {
			return controller.Options{AgentName: ControllerName}
		})
		r.enqueue = impl.EnqueueKey
		if o.Waker != nil {
			o.Waker(func(key string) {
				if nn, ok := r.WakeGate(key); ok {
					impl.EnqueueKey(nn)
				}
			})
		}
		if dyn, ok := ctx.Value(dynamicclient.Key{}).(dynamic.Interface); ok {
			r.Approvals = watchApprovalGates(ctx, dyn, impl, o, clk)
			if o.Voter != nil {
				o.Voter(r.Approvals.Vote)
			}
		}
		// The cache holds every CustomRun of the cluster; managed fields are
		// most of an object's size and we never read them.
		if err := customruninformer.Get(ctx).Informer().SetTransform(stripManagedFields); err != nil {
			logging.FromContext(ctx).Infow("informer transform not installed", "error", err)
		}
		if _, err := customruninformer.Get(ctx).Informer().AddEventHandler(cache.FilteringResourceEventHandler{
			FilterFunc: tkncontroller.FilterCustomRunRef(APIVersion, Kind),
			Handler:    controller.HandleAll(impl.Enqueue),
		}); err != nil {
			panic(err)
		}
		return impl
	}
}

// watchApprovalGates starts the informer of ApprovalGates: a change of a gate
// (a decision recorded by kubectl, tkn or a Slack click) enqueues the
// CustomRun that owns it. The gate of a deleted CustomRun is deleted too,
// for clusters where no garbage collector follows owner references.
func watchApprovalGates(ctx context.Context, dyn dynamic.Interface, impl *controller.Impl, o Options, clk clock.PassiveClock) *ApprovalGates {
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 10*time.Hour, metav1.NamespaceAll, nil)
	inf := factory.ForResource(v1alpha1.ApprovalGatesResource)
	if err := inf.Informer().SetTransform(stripManagedFields); err != nil {
		logging.FromContext(ctx).Infow("informer transform not installed", "error", err)
	}
	if _, err := inf.Informer().AddEventHandler(controller.HandleAll(impl.EnqueueControllerOf)); err != nil {
		panic(err)
	}
	runs := customruninformer.Get(ctx)
	a := &ApprovalGates{Client: dyn, Lister: inf.Lister(), Runs: runs.Lister(), Source: o.Source, Clock: clk, Metrics: o.GateMetrics}
	o.GateMetrics.watch(inf.Lister())
	if _, err := runs.Informer().AddEventHandler(cache.FilteringResourceEventHandler{
		FilterFunc: tkncontroller.FilterCustomRunRef(APIVersion, Kind),
		Handler: cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if run, ok := obj.(*v1beta1.CustomRun); ok {
				a.deleteOf(ctx, run)
			}
		}},
	}); err != nil {
		panic(err)
	}
	factory.Start(ctx.Done())
	return a
}
