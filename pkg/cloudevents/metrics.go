package cloudevents

import "github.com/prometheus/client_golang/prometheus"

// Metrics count the events by type (names as the controller's other metrics,
// pkg/reconciler/metrics.go). A nil *Metrics counts nothing.
type Metrics struct {
	sentTotal, failedTotal, droppedTotal *prometheus.CounterVec
	queueLength, sinkConfigured          prometheus.Gauge
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sentTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cicdstatemgr_cloudevents_sent_total", Help: "CloudEvents the sink accepted, by type.",
		}, []string{"type"}),
		failedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cicdstatemgr_cloudevents_failed_total", Help: "CloudEvents given up after their attempts (or refused by the sink), by type.",
		}, []string{"type"}),
		droppedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cicdstatemgr_cloudevents_dropped_total", Help: "CloudEvents dropped unsent because the queue was full, by type.",
		}, []string{"type"}),
		queueLength: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cicdstatemgr_cloudevents_queued", Help: "CloudEvents waiting to be sent.",
		}),
		sinkConfigured: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cicdstatemgr_cloudevents_sink_configured", Help: "1 while config.yaml names a CloudEvents sink, else 0.",
		}),
	}
	reg.MustRegister(m.sentTotal, m.failedTotal, m.droppedTotal, m.queueLength, m.sinkConfigured)
	return m
}

func (m *Metrics) sent(typ string) {
	if m != nil {
		m.sentTotal.WithLabelValues(typ).Inc()
	}
}

func (m *Metrics) failed(typ string) {
	if m != nil {
		m.failedTotal.WithLabelValues(typ).Inc()
	}
}

func (m *Metrics) dropped(typ string) {
	if m != nil {
		m.droppedTotal.WithLabelValues(typ).Inc()
	}
}

func (m *Metrics) queued(n int) {
	if m != nil {
		m.queueLength.Set(float64(n))
	}
}

func (m *Metrics) configured(sink string) {
	if m != nil {
		v := 0.0
		if sink != "" {
			v = 1
		}
		m.sinkConfigured.Set(v)
	}
}
