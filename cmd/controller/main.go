// Command controller reconciles cicdstatemgr.dev/v1alpha1 CicdState
// CustomRuns (see pkg/reconciler) and serves health and metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioned "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	kubeclient "knative.dev/pkg/client/injection/kube/client"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/injection/sharedmain"
	"knative.dev/pkg/logging"
	"knative.dev/pkg/signals"
	"knative.dev/pkg/system"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/configwatch"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/reconciler"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/trigger"
)

func main() {
	threads := flag.Int("threads", 8, "reconcile workers (CustomRuns processed in parallel)")
	httpAddr := flag.String("http-addr", ":8090", "address of the HTTP server: /healthz, /readyz, /metrics, Slack interactions")
	redisAddr := flag.String("redis-addr", "", "override datasources.redis host:port of config.yaml")
	disableHA := flag.Bool("disable-ha", false, "run without leader election (single replica)")
	memLimit := flag.Int64("memory-limit-mib", 64, "soft memory limit for the Go runtime in MiB (0: none; GOMEMLIMIT wins when set)")
	cfg := injection.ParseAndGetRESTConfigOrDie()
	// Defaults sized for hundreds of CustomRuns a minute: each run costs a
	// status update and an event.
	if cfg.QPS == 0 {
		cfg.QPS = 50
	}
	if cfg.Burst == 0 {
		cfg.Burst = 100
	}
	controller.DefaultThreadsPerController = *threads
	if *memLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// returns memory to the system sooner after bursts of CustomRuns
		debug.SetMemoryLimit(*memLimit << 20)
	}

	tektonClient := versioned.NewForConfigOrDie(cfg)
	// create-pipelinerun checks with SubjectAccessReviews that the asking
	// pipeline may create PipelineRuns (pkg/trigger/authority.go).
	kubeClient := kubernetes.NewForConfigOrDie(cfg)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := reconciler.NewMetrics(reg)
	// wake is set once the controller exists: a choice made through our
	// HTTP endpoint wakes the waiting CustomRun at once.
	var wake atomic.Pointer[func(string)]
	src := configwatch.NewSource(func(st *store.Store, c *config.Config) *engine.Engine {
		// each configuration brings its own render budget (budgets.render)
		r := tmpl.New(c.Budgets().TemplateOptions())
		gates := gate.New(st)
		gates.OnDecision = func(p gate.Gate, _ gate.Decision) {
			if w := wake.Load(); w != nil {
				(*w)(p.Key)
			}
		}
		runner := handlers.NewRunner(st, r, slog.Default(), handlers.WithGates(gates))
		runner.Trigger = (&trigger.Creator{Client: tektonClient, Kube: kubeClient, Templates: r, Fallback: runner.PostTrigger}).Trigger
		return &engine.Engine{Store: st, Templates: r, Gates: gates, Handlers: runner}
	})
	if *redisAddr != "" {
		src.StoreOptions = func(o *store.Options) { o.Addr = *redisAddr }
	}

	ctx := signals.NewContext()
	if *disableHA {
		ctx = sharedmain.WithHADisabled(ctx)
	}
	go serveHTTP(ctx, *httpAddr, newMux(reg, src, slog.Default()))
	sharedmain.MainWithConfig(ctx, reconciler.ControllerName, cfg, reconciler.NewController(reconciler.Options{
		Source:  src,
		Metrics: metrics,
		Waker:   func(fn func(string)) { wake.Store(&fn) },
		Setup: func(ctx context.Context, cmw configmap.Watcher) error {
			logger := logging.FromContext(ctx)
			if err := src.Watch(ctx, cmw, kubeclient.Get(ctx), system.Namespace(), func(err error) {
				logger.Errorw("configuration rejected", "error", err)
			}); err != nil {
				return err
			}
			go followDecisions(ctx, src, func(key string) {
				if w := wake.Load(); w != nil {
					(*w)(key)
				}
			}, logger.Infow)
			return nil
		},
	}))
}

func serveHTTP(ctx context.Context, addr string, mux *http.ServeMux) {
	// Every read and write is bounded: a client that sends or reads slowly
	// holds a connection for seconds, not for ever.
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("http server on %s: %v", addr, err)
	}
}

// followDecisions subscribes to the decisions published by any process (the
// CLI's `decide`, another replica) so that a waiting CustomRun wakes at once
// rather than at its next poll. It follows the store across configuration
// reloads.
func followDecisions(ctx context.Context, src *configwatch.Source, wake func(string), logf func(string, ...any)) {
	var current *store.Store
	stop := func() {}
	defer func() { stop() }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		if eng, _, err := src.Current(); err == nil && eng.Gates != nil && src.Store() != current {
			stop()
			subCtx, cancel := context.WithCancel(ctx)
			stop = cancel
			if err := eng.Gates.Subscribe(subCtx, wake); err != nil {
				cancel()
				logf("cannot subscribe to gate decisions yet; waiting runs poll", "error", err)
			} else {
				current = src.Store()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
