package reconciler

import (
	"context"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakekube "k8s.io/client-go/kubernetes/fake"
)

// TestEventRecorderWritesToTheAPI: the controller's own recorder (the one
// knative would make, with smaller caches) delivers a CustomRun's event to
// the API server, as our component.
func TestEventRecorderWritesToTheAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kube := fakekube.NewSimpleClientset()
	rec := newEventRecorder(ctx, kube)
	run := &v1beta1.CustomRun{ObjectMeta: metav1.ObjectMeta{Name: "r1", Namespace: "ns", UID: "u1"}}
	rec.Event(run, corev1.EventTypeNormal, ReasonSucceeded, "op set on c succeeded")
	for {
		l, err := kube.CoreV1().Events("ns").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) == 1 {
			e := l.Items[0]
			if e.Reason != ReasonSucceeded || e.InvolvedObject.Name != "r1" || e.Source.Component != ControllerName {
				t.Fatalf("event %+v", e)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no event reached the API: %d events", len(l.Items))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
