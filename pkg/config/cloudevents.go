package config

import (
	"fmt"
	"net/url"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// CloudEventsKey is the block of config.yaml (under cicdstatemgr) that sets
// where the controller sends its CloudEvents (docs/observability.md). It is
// the administrator's, like Tekton's default-cloud-events-sink: nothing a
// pipeline writes reaches it.
const CloudEventsKey = "cloudEvents"

// Bounds of the cloudEvents settings.
const (
	MaxCloudEventsQueueSize   = 1 << 20
	MaxCloudEventsMaxAttempts = 100
)

// CloudEvents is the cloudEvents block. A zero QueueSize or MaxAttempts means
// the emitter's default (pkg/cloudevents).
type CloudEvents struct {
	// Sink is the absolute http or https URL events are sent to; empty: no
	// events are sent.
	Sink string
	// QueueSize bounds the events waiting to be sent; past it they are
	// dropped (and counted).
	QueueSize int
	// MaxAttempts bounds the sends of one event.
	MaxAttempts int
}

// CloudEvents returns the cloudEvents block (validated by Parse). A Config
// not made by Parse sends none.
func (c *Config) CloudEvents() CloudEvents {
	if c == nil || c.cloudEvents == nil {
		return CloudEvents{}
	}
	return *c.cloudEvents
}

// parseCloudEvents reads the cloudEvents block of config data.
func parseCloudEvents(data *document.Map) (CloudEvents, error) {
	var ce CloudEvents
	v, ok := data.Get(CloudEventsKey)
	if !ok || v == nil {
		return ce, nil
	}
	m, isMap := v.(*document.Map)
	if !isMap {
		return ce, fmt.Errorf("config.yaml: %s must be a map {sink, queueSize, maxAttempts}, not a %s", CloudEventsKey, document.TypeName(v))
	}
	if err := onlyKeys(m, CloudEventsKey, "sink", "queueSize", "maxAttempts"); err != nil {
		return ce, fmt.Errorf("config.yaml: %w", err)
	}
	if ce.Sink = str(m, "sink"); ce.Sink != "" {
		u, err := url.Parse(ce.Sink)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return ce, fmt.Errorf("config.yaml: %s.sink must be an absolute http or https URL such as http://broker-ingress.knative-eventing.svc.cluster.local/default/default", CloudEventsKey)
		}
	}
	var err error
	if v, ok := m.Get("queueSize"); ok && v != nil {
		if ce.QueueSize, err = cloudEventsCount("queueSize", v, MaxCloudEventsQueueSize); err != nil {
			return ce, err
		}
	}
	if v, ok := m.Get("maxAttempts"); ok && v != nil {
		if ce.MaxAttempts, err = cloudEventsCount("maxAttempts", v, MaxCloudEventsMaxAttempts); err != nil {
			return ce, err
		}
	}
	return ce, nil
}

func cloudEventsCount(name string, v any, max int64) (int, error) {
	n, err := budgetInt(name, v)
	if err != nil {
		return 0, fmt.Errorf("config.yaml: %s.%s must be a positive integer, not %s", CloudEventsKey, name, describe(v))
	}
	if n > max {
		return 0, fmt.Errorf("config.yaml: %s.%s %d is too large (at most %d)", CloudEventsKey, name, n, max)
	}
	return int(n), nil
}
