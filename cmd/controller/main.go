// Command controller reconciles cicdstatemgr.dev/v1alpha1 CicdState
// CustomRuns (see pkg/reconciler), serves the Slack endpoints on --http-addr and
// health and metrics on --probe-addr.
package main

import (
	"context"
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
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpserver"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/observability"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/reconciler"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/trigger"
)

func main() {
	// spans of the engine's ops, their Redis commands and HTTP calls
	// (docs/observability.md); before any store or HTTP client is made
	observability.Install()
	threads := flag.Int("threads", 8, "reconcile workers (CustomRuns processed in parallel)")
	httpAddr := flag.String("http-addr", ":8090", "address of the Slack endpoints (/slack/interactions, /slack/commands), the only port to expose to Slack")
	probeAddr := flag.String("probe-addr", ":8091", "address of /healthz, /readyz and /metrics (for the kubelet and Prometheus; expose it to no one else)")
	maxInFlight := flag.Int("http-max-in-flight", httpserver.DefaultSlackMaxInFlight, "requests handled at once on --http-addr; more are answered 503 with Retry-After (0: no limit)")
	maxConnsPerClient := flag.Int("http-max-conns-per-client", httpserver.DefaultSlackMaxConnsPerClient,
		"open connections of one client IP on --http-addr; more are closed at accept (0: no limit; behind an ingress or proxy all clients share its IP)")
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
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cicdstatemgr_store_tx_retries_total", Help: "Optimistic Redis transactions (WATCH) retried after losing a race to another writer of the same context."}, store.TxRetries))
	metrics := reconciler.NewMetrics(reg)
	gateMetrics := reconciler.NewGateMetrics(reg)
	events := newEmitter(reg)
	// wake is set once the controller exists: a choice made through our
	// HTTP endpoint wakes the waiting CustomRun at once.
	var wake atomic.Pointer[func(string)]
	var vote atomic.Pointer[func(context.Context, gate.Gate, gate.Decision) error]
	src := configwatch.NewSource(func(st *store.Store, c *config.Config) *engine.Engine {
		// each configuration brings its own render budget (budgets.render)
		r := tmpl.New(c.Budgets().TemplateOptions())
		gates := gate.New(st)
		gates.OnDecision = func(p gate.Gate, _ gate.Decision) {
			if w := wake.Load(); w != nil {
				(*w)(p.Key)
			}
		}
		// a Slack click on a gate with an ApprovalGate is a vote on it
		gates.Vote = func(ctx context.Context, p gate.Gate, d gate.Decision) error {
			if v := vote.Load(); v != nil {
				return (*v)(ctx, p, d)
			}
			return gate.ErrNoObject
		}
		// one dead endpoint takes at most budgets.callsPerHost of the calls
		hosts := &httpclient.HostLimiter{Max: c.Budgets().CallsPerHost, Wait: 2 * time.Second}
		runner := handlers.NewRunner(st, r, slog.Default(), handlers.WithGates(gates),
			handlers.WithHTTPClient(&httpclient.Client{Hosts: hosts}))
		runner.Trigger = (&trigger.Creator{Client: tektonClient, Kube: kubeClient, Templates: r, Fallback: runner.PostTrigger}).Trigger
		events.Configure(eventSettings(c.CloudEvents()))
		return &engine.Engine{Store: st, Templates: r, Gates: gates, Handlers: runner,
			EventSlots: make(chan struct{}, c.Budgets().EventsInFlight), ContextChanged: contextChanged(events)}
	})
	if *redisAddr != "" {
		src.StoreOptions = func(o *store.Options) { o.Addr = *redisAddr }
	}

	// Our /healthz and /readyz are on --probe-addr; knative's own probe server binds
	// :8080 whatever PROBES_PORT says, and when that port is taken (another knative
	// controller on the same host) its failure also shuts the profiling server down.
	ctx := sharedmain.WithHealthProbesDisabled(signals.NewContext())
	if *disableHA {
		ctx = sharedmain.WithHADisabled(ctx)
	}
	go events.Run(ctx)
	slackLimits := httpserver.SlackLimits()
	slackLimits.MaxInFlight, slackLimits.MaxConnsPerClient = *maxInFlight, *maxConnsPerClient
	go serveHTTP(ctx, "slack", *httpAddr, newSlackMux(src, slog.Default(), metrics.BudgetExceeded), slackLimits, metrics.BudgetExceeded)
	go serveHTTP(ctx, "probe", *probeAddr, newProbeMux(reg, src, slog.Default()), httpserver.ProbeLimits(), metrics.BudgetExceeded)
	go serveUI(ctx, src, kubeClient, cfg, metrics.BudgetExceeded)
	sharedmain.MainWithConfig(ctx, reconciler.ControllerName, cfg, reconciler.NewController(reconciler.Options{
		Source:      src,
		Metrics:     metrics,
		GateMetrics: gateMetrics,
		CloudEvents: events,
		Waker:       func(fn func(string)) { wake.Store(&fn) },
		Voter:       func(fn func(context.Context, gate.Gate, gate.Decision) error) { vote.Store(&fn) },
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

// serveHTTP serves h on addr with the limits l (pkg/httpserver) until ctx is done;
// limits hit are counted by exceeded. A listener that cannot start stops the
// controller: without it Slack cannot decide gates, or the probes fail anyway.
func serveHTTP(ctx context.Context, name, addr string, h http.Handler, l httpserver.Limits, exceeded func(string)) {
	ln, err := httpserver.Listen(addr, l, exceeded)
	if err == nil {
		err = httpserver.Serve(ctx, httpserver.Server(h, l, exceeded), ln)
	}
	if err != nil {
		log.Fatalf("%s http server on %s: %v", name, addr, err)
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
