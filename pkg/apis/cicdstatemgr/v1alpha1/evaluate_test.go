package v1alpha1

import (
	"reflect"
	"testing"
)

func approve(by, opt string) Decision { return Decision{By: by, Action: ActionApprove, Option: opt} }
func reject(by, msg string) Decision  { return Decision{By: by, Action: ActionReject, Message: msg} }

// TestEvaluate: the quorum and outcome rules, one table row per rule.
func TestEvaluate(t *testing.T) {
	opts := []Option{{Text: "Ship", Value: "ship"}, {Text: "Stop", Value: "stop"}}
	for _, tc := range []struct {
		name      string
		spec      ApprovalGateSpec
		state     string
		choice    string
		chosenBy  []string
		reason    string
		approvals string
		ignored   int
	}{
		{name: "no decisions: pending", spec: ApprovalGateSpec{ApprovalsRequired: 2},
			state: StatePending, approvals: "0/2"},
		{name: "one of two: pending", spec: ApprovalGateSpec{ApprovalsRequired: 2, Decisions: []Decision{approve("alice", "ship")}},
			state: StatePending, approvals: "1/2"},
		{name: "two of two: approved, approvers in order", spec: ApprovalGateSpec{ApprovalsRequired: 2, Decisions: []Decision{approve("bob", "ship"), approve("alice", "ship")}},
			state: StateApproved, choice: "ship", chosenBy: []string{"bob", "alice"}, approvals: "2/2"},
		{name: "default quorum is one", spec: ApprovalGateSpec{Decisions: []Decision{approve("alice", "stop")}},
			state: StateApproved, choice: "stop", chosenBy: []string{"alice"}, approvals: "1/1"},
		{name: "empty option approves the first", spec: ApprovalGateSpec{Decisions: []Decision{approve("alice", "")}},
			state: StateApproved, choice: "ship", chosenBy: []string{"alice"}, approvals: "1/1"},
		{name: "the same approver twice counts once (latest entry)", spec: ApprovalGateSpec{ApprovalsRequired: 2, Decisions: []Decision{approve("alice", "ship"), approve("alice", "ship")}},
			state: StatePending, approvals: "1/2"},
		{name: "votes for different options do not add up", spec: ApprovalGateSpec{ApprovalsRequired: 2, Decisions: []Decision{approve("alice", "ship"), approve("bob", "stop")}},
			state: StatePending, approvals: "1/2"},
		{name: "one rejection rejects, with its reason", spec: ApprovalGateSpec{ApprovalsRequired: 2, Decisions: []Decision{approve("alice", "ship"), reject("bob", "tests are red")}},
			state: StateRejected, chosenBy: []string{"bob"}, reason: "bob: tests are red", approvals: "1/2"},
		{name: "two rejections required", spec: ApprovalGateSpec{ApprovalsRequired: 2, RejectionsRequired: 2, Decisions: []Decision{reject("bob", "no"), approve("alice", "ship"), approve("carol", "ship")}},
			state: StateApproved, choice: "ship", chosenBy: []string{"alice", "carol"}, approvals: "2/2"},
		{name: "self-approval does not count", spec: ApprovalGateSpec{ForbidSelfApproval: true, RequestedBy: "alice", Decisions: []Decision{approve("alice", "ship")}},
			state: StatePending, approvals: "0/1", ignored: 1},
		{name: "the requester may reject", spec: ApprovalGateSpec{ForbidSelfApproval: true, RequestedBy: "alice", Decisions: []Decision{reject("alice", "withdrawn")}},
			state: StateRejected, chosenBy: []string{"alice"}, reason: "alice: withdrawn", approvals: "0/1"},
		{name: "self-approval allowed when not forbidden", spec: ApprovalGateSpec{RequestedBy: "alice", Decisions: []Decision{approve("alice", "ship")}},
			state: StateApproved, choice: "ship", chosenBy: []string{"alice"}, approvals: "1/1"},
		{name: "unknown option and action are ignored", spec: ApprovalGateSpec{Decisions: []Decision{approve("alice", "nuke"), {By: "bob", Action: "maybe"}}},
			state: StatePending, approvals: "0/1", ignored: 2},
		{name: "late decisions after the outcome do not change it", spec: ApprovalGateSpec{Decisions: []Decision{approve("alice", "ship"), reject("bob", "too late")}},
			state: StateApproved, choice: "ship", chosenBy: []string{"alice"}, approvals: "1/1"},
		{name: "a changed mind counts as the latest entry at its first place", spec: ApprovalGateSpec{ApprovalsRequired: 2, Decisions: []Decision{approve("alice", "ship"), approve("bob", "ship"), reject("alice", "found a bug")}},
			state: StateRejected, chosenBy: []string{"alice"}, reason: "alice: found a bug", approvals: "0/2"},
		{name: "messages of approvers are the reason", spec: ApprovalGateSpec{ApprovalsRequired: 2, Decisions: []Decision{{By: "a", Action: ActionApprove, Message: "lgtm"}, {By: "b", Action: ActionApprove}}},
			state: StateApproved, choice: "ship", chosenBy: []string{"a", "b"}, reason: "a: lgtm", approvals: "2/2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Options = opts
			ev := tc.spec.Evaluate()
			o := ev.Outcome
			if o.State != tc.state || o.Choice != tc.choice || !reflect.DeepEqual(o.ChosenBy, tc.chosenBy) || o.Reason != tc.reason {
				t.Errorf("outcome %+v, want state %s choice %q chosenBy %v reason %q", o, tc.state, tc.choice, tc.chosenBy, tc.reason)
			}
			if ev.Summary() != tc.approvals {
				t.Errorf("approvals %s, want %s", ev.Summary(), tc.approvals)
			}
			if len(ev.Ignored) != tc.ignored {
				t.Errorf("ignored %v, want %d", ev.Ignored, tc.ignored)
			}
		})
	}
}

// TestDeepCopyIsDeep: a copy shares no slice or pointer with its original.
func TestDeepCopyIsDeep(t *testing.T) {
	g := &ApprovalGate{Spec: ApprovalGateSpec{Options: []Option{{Value: "a"}}, Approvers: Approvers{Users: []string{"u"}}, Decisions: []Decision{approve("x", "a")}},
		Status: ApprovalGateStatus{Outcome: Outcome{ChosenBy: []string{"x"}}}}
	c := g.DeepCopy()
	c.Spec.Options[0].Value, c.Spec.Approvers.Users[0], c.Spec.Decisions[0].By, c.Status.Outcome.ChosenBy[0] = "b", "v", "y", "y"
	if g.Spec.Options[0].Value != "a" || g.Spec.Approvers.Users[0] != "u" || g.Spec.Decisions[0].By != "x" || g.Status.Outcome.ChosenBy[0] != "x" {
		t.Fatalf("the copy shares memory with the original: %+v", g)
	}
	u, err := ToUnstructured(g)
	if err != nil {
		t.Fatal(err)
	}
	if u.GetAPIVersion() != "cicdstatemgr.dev/v1alpha1" || u.GetKind() != Kind {
		t.Fatalf("apiVersion/kind %s %s", u.GetAPIVersion(), u.GetKind())
	}
	back, err := FromUnstructured(u)
	if err != nil || !reflect.DeepEqual(back.Spec, g.Spec) {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}
