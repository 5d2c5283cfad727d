package cloudevents

import (
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
)

// Gate is the data of the gate events: what the gate asks and, once decided,
// its outcome. Slack user ids and channels are left out: they identify people
// and places a sink has no need of.
type Gate struct {
	Namespace string `json:"namespace"`
	// ContextID is the id of the cicd context the gate belongs to.
	ContextID string `json:"contextId"`
	// Key is the gate's key: the UID of the waiting CustomRun.
	Key       string   `json:"key"`
	CustomRun string   `json:"customRun,omitempty"`
	Pipeline  string   `json:"pipeline,omitempty"`
	Event     string   `json:"event,omitempty"`
	Title     string   `json:"title,omitempty"`
	Options   []Option `json:"options"`
	// State is Pending (gate.waiting), else Approved, Rejected, TimedOut or
	// Cancelled, as in the ApprovalGate's status.outcome.state.
	State     string     `json:"state"`
	Choice    string     `json:"choice,omitempty"`
	ChosenBy  string     `json:"chosenBy,omitempty"`
	Via       string     `json:"via,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	DecidedAt *time.Time `json:"decidedAt,omitempty"`
}

// Option is one answer the gate accepts.
type Option struct {
	Text  string `json:"text,omitempty"`
	Value string `json:"value"`
}

// GateData is the data of a gate event about p, opened by the CustomRun
// namespace/customRun on the context namespace/id. With d nil the gate is
// Pending, unless closed (Cancelled or TimedOut) says why it ended without a
// decision.
func GateData(namespace, id, customRun string, p gate.Gate, d *gate.Decision, closed string) Gate {
	g := Gate{
		Namespace: namespace, ContextID: id, Key: p.Key, CustomRun: customRun,
		Pipeline: p.Pipeline, Event: p.Event, Title: p.Title, Options: []Option{},
		State: v1alpha1.StatePending,
	}
	for _, o := range p.Options {
		g.Options = append(g.Options, Option{Text: o.Text, Value: o.Value})
	}
	switch {
	case d != nil:
		at := d.At.UTC()
		g.State, g.Choice, g.ChosenBy, g.Via, g.Reason, g.DecidedAt = stateOf(*d), d.Choice, d.ChosenBy, d.Via, d.Reason, &at
	case closed != "":
		g.State = closed
	}
	return g
}

func stateOf(d gate.Decision) string {
	switch d.Outcome {
	case gate.OutcomeRejected:
		return v1alpha1.StateRejected
	case gate.OutcomeTimedOut:
		return v1alpha1.StateTimedOut
	}
	return v1alpha1.StateApproved
}
