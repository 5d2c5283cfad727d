package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
)

// TestGateMetrics: pending gates are counted per namespace from the cache
// (decided ones are not); outcomes and their latency are counted.
func TestGateMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewGateMetrics(reg)
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for i, g := range []struct{ ns, state string }{{"a", ""}, {"a", v1alpha1.StatePending}, {"a", v1alpha1.StateApproved}, {"b", v1alpha1.StatePending}} {
		u, err := v1alpha1.ToUnstructured(&v1alpha1.ApprovalGate{ObjectMeta: metav1.ObjectMeta{Namespace: g.ns, Name: string(rune('p' + i))},
			Status: v1alpha1.ApprovalGateStatus{Outcome: v1alpha1.Outcome{State: g.state}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := idx.Add(u); err != nil {
			t.Fatal(err)
		}
	}
	m.watch(cache.NewGenericLister(idx, v1alpha1.ApprovalGatesResource.GroupResource()))
	m.decided(v1alpha1.StateRejected, 90*time.Second)
	want := `
# HELP cicdstatemgr_approval_gates_pending Approval gates waiting for a decision, by namespace.
# TYPE cicdstatemgr_approval_gates_pending gauge
cicdstatemgr_approval_gates_pending{namespace="a"} 2
cicdstatemgr_approval_gates_pending{namespace="b"} 1
# HELP cicdstatemgr_approval_gate_outcomes_total Approval gates decided, by outcome: Approved, Rejected, TimedOut, Cancelled.
# TYPE cicdstatemgr_approval_gate_outcomes_total counter
cicdstatemgr_approval_gate_outcomes_total{state="Rejected"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cicdstatemgr_approval_gates_pending", "cicdstatemgr_approval_gate_outcomes_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.latency); n != 1 {
		t.Fatalf("latency histogram: %d series", n)
	}
	var nilMetrics *GateMetrics
	nilMetrics.decided(v1alpha1.StateApproved, time.Second) // records nothing, no panic
	nilMetrics.watch(nil)
}
