package main

import (
	"context"
	"log"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/cloudevents"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
)

// newEmitter is the CloudEvents emitter of the controller, counting in reg;
// it sends nothing until config.yaml names a sink (cloudEvents.sink).
func newEmitter(reg prometheus.Registerer) *cloudevents.Emitter {
	e, err := cloudevents.New(nil, cloudevents.NewMetrics(reg))
	if err != nil {
		log.Fatalf("cloudevents: %v", err)
	}
	return e
}

// eventSettings are the emitter's settings of config.yaml's cloudEvents block.
func eventSettings(c config.CloudEvents) cloudevents.Settings {
	return cloudevents.Settings{Sink: c.Sink, QueueSize: c.QueueSize, MaxAttempts: c.MaxAttempts}
}

// contextChanged sends each history entry an op wrote (redacted by the store)
// as a context.changed event about the context namespace/id.
func contextChanged(e *cloudevents.Emitter) func(context.Context, string, history.Entry) {
	return func(_ context.Context, ref string, en history.Entry) {
		e.Emit(cloudevents.TypeContextChanged, ref, en)
	}
}
