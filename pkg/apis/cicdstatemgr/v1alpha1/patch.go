package v1alpha1

import (
	"encoding/json"
	"fmt"
)

// DecisionPatch is the JSON patch that records d as its author's own entry of
// spec.decisions of a gate whose decisions are now decisions: it replaces
// their earlier entry (after a test that the entry is still theirs), or adds
// one. It touches nothing else, which is all the admission policy lets an
// approver write (docs/gates.md); every client that decides as a person (the
// tkn plugin, the web page) sends this patch with that person's credentials.
func DecisionPatch(decisions []Decision, d Decision) ([]byte, error) {
	var ops []map[string]any
	switch i := decisionOf(decisions, d.By); {
	case i >= 0:
		p := fmt.Sprintf("/spec/decisions/%d", i)
		ops = []map[string]any{{"op": "test", "path": p + "/by", "value": d.By}, {"op": "replace", "path": p, "value": d}}
	case len(decisions) == 0:
		// (a concurrent first decision would be replaced: the policy refuses
		// that, "a recorded decision cannot be removed")
		ops = []map[string]any{{"op": "add", "path": "/spec/decisions", "value": []Decision{d}}}
	default:
		ops = []map[string]any{{"op": "add", "path": "/spec/decisions/-", "value": d}}
	}
	return json.Marshal(ops)
}

func decisionOf(ds []Decision, by string) int {
	for i, d := range ds {
		if d.By == by {
			return i
		}
	}
	return -1
}
