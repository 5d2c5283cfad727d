package v1alpha1

import (
	"encoding/json"
	"testing"
)

// TestDecisionPatch: a person's decision replaces their own entry (guarded by
// a test op), starts the list, or is appended; nothing else is touched.
func TestDecisionPatch(t *testing.T) {
	alice := Decision{By: "alice", Action: ActionApprove, Option: "ship"}
	bob := Decision{By: "bob", Action: ActionReject, Message: "no"}
	for _, tc := range []struct {
		name      string
		decisions []Decision
		d         Decision
		want      string
	}{
		{"first", nil, alice, `[{"op":"add","path":"/spec/decisions","value":[{"by":"alice","action":"approve","option":"ship"}]}]`},
		{"another's", []Decision{bob}, alice, `[{"op":"add","path":"/spec/decisions/-","value":{"by":"alice","action":"approve","option":"ship"}}]`},
		{"own again", []Decision{bob, alice}, Decision{By: "alice", Action: ActionReject}, `[{"op":"test","path":"/spec/decisions/1/by","value":"alice"},{"op":"replace","path":"/spec/decisions/1","value":{"by":"alice","action":"reject"}}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := DecisionPatch(tc.decisions, tc.d)
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(want)
			if string(gb) != string(wb) {
				t.Errorf("patch\n got %s\nwant %s", b, tc.want)
			}
		})
	}
}
