package reconciler

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"knative.dev/pkg/logging"
)

// EventCacheSize is how many recent Kubernetes events the controller's event
// recorder remembers to aggregate repeats and throttle spam (client-go's
// correlator). Its default, 4096 entries in each of three caches, is sized
// for long-lived objects; a CustomRun's events all come within its few
// milliseconds of life, so the entries of finished runs only held memory
// (README, "Benchmarks").
const EventCacheSize = 256

// newEventRecorder is the recorder knative's generated reconciler would make
// (events to the API server, stopped with ctx), with the smaller correlator
// caches and the events logged at debug level rather than info: every event
// is in the API server already, and one log line per event was a measurable
// part of a CustomRun's cost.
func newEventRecorder(ctx context.Context, kube kubernetes.Interface) record.EventRecorder {
	b := record.NewBroadcaster(record.WithContext(ctx), record.WithCorrelatorOptions(record.CorrelatorOptions{LRUCacheSize: EventCacheSize}))
	b.StartLogging(logging.FromContext(ctx).Named("event-broadcaster").Debugf)
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: ControllerName})
}
