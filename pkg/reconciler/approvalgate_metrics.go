package reconciler

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
)

// GateMetrics are the Prometheus metrics of approval gates. A nil
// *GateMetrics records nothing.
type GateMetrics struct {
	latency  prometheus.Histogram
	outcomes *prometheus.CounterVec
	pending  *prometheus.Desc
	// gates reads the ApprovalGates of the informer's cache, once it exists.
	gates atomic.Pointer[cache.GenericLister]
}

// NewGateMetrics registers the approval gate metrics with reg:
// cicdstatemgr_approval_gates_pending{namespace} (read from the informer's
// cache at each scrape), cicdstatemgr_approval_gate_decision_seconds (from the
// gate's creation to its outcome) and
// cicdstatemgr_approval_gate_outcomes_total{state}.
func NewGateMetrics(reg prometheus.Registerer) *GateMetrics {
	m := &GateMetrics{
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cicdstatemgr_approval_gate_decision_seconds", Help: "Time from an approval gate's creation to its outcome.",
			Buckets: []float64{1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cicdstatemgr_approval_gate_outcomes_total", Help: "Approval gates decided, by outcome: Approved, Rejected, TimedOut, Cancelled.",
		}, []string{"state"}),
		pending: prometheus.NewDesc("cicdstatemgr_approval_gates_pending", "Approval gates waiting for a decision, by namespace.", []string{"namespace"}, nil),
	}
	reg.MustRegister(m.latency, m.outcomes, m)
	return m
}

// watch makes the pending gauge read gates from l.
func (m *GateMetrics) watch(l cache.GenericLister) {
	if m != nil {
		m.gates.Store(&l)
	}
}

// decided counts one outcome reached d after the gate was created.
func (m *GateMetrics) decided(state string, d time.Duration) {
	if m == nil {
		return
	}
	m.outcomes.WithLabelValues(state).Inc()
	m.latency.Observe(d.Seconds())
}

// Describe implements prometheus.Collector (the pending gauge).
func (m *GateMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.pending }

// Collect implements prometheus.Collector: the pending gates per namespace,
// counted from the cache when scraped (nothing to keep in step).
func (m *GateMetrics) Collect(ch chan<- prometheus.Metric) {
	l := m.gates.Load()
	if l == nil {
		return
	}
	objs, err := (*l).List(labels.Everything())
	if err != nil {
		return
	}
	byNS := map[string]int{}
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		state, _, _ := unstructured.NestedString(u.Object, "status", "outcome", "state")
		if state == "" || state == v1alpha1.StatePending {
			byNS[u.GetNamespace()]++
		}
	}
	for ns, n := range byNS {
		ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(n), ns)
	}
}
