package v1alpha1

import (
	"fmt"
	"strings"
)

// Evaluation is what the decisions of a gate add up to.
type Evaluation struct {
	// Outcome is Pending, Approved or Rejected (DecidedAt is left to the
	// caller, who knows when the outcome was committed).
	Outcome Outcome
	// Approvals of the leading option, and how many are required.
	Approvals, Required int
	// Counted are the decisions that count, in order.
	Counted []Decision
	// Ignored are the decisions that do not count, with why.
	Ignored []Ignored
}

// Ignored is a decision that does not count.
type Ignored struct {
	Decision Decision
	Why      string
}

// Summary is "<approvals>/<required>", the printer column Approvals.
func (e Evaluation) Summary() string { return fmt.Sprintf("%d/%d", e.Approvals, e.Required) }

// Required is how many distinct approvers must approve one option.
func (s *ApprovalGateSpec) Required() int { return max(s.ApprovalsRequired, 1) }

// RejectionsNeeded is how many distinct rejections reject the gate.
func (s *ApprovalGateSpec) RejectionsNeeded() int { return max(s.RejectionsRequired, 1) }

// HasOption reports whether v is one of the option values.
func (s *ApprovalGateSpec) HasOption(v string) bool {
	for _, o := range s.Options {
		if o.Value == v {
			return true
		}
	}
	return false
}

// OptionOf is the option a decision approves: its Option, else the first one.
func (s *ApprovalGateSpec) OptionOf(d Decision) string {
	if d.Option == "" && len(s.Options) > 0 {
		return s.Options[0].Value
	}
	return d.Option
}

// Evaluate adds up spec.decisions in order. Each approver counts once (their
// latest entry); the first threshold crossed wins: ApprovalsRequired distinct
// approvals of one option approve it, RejectionsRequired distinct rejections
// reject the gate. Decisions that name an unknown option or action, and
// approvals by RequestedBy when ForbidSelfApproval, do not count.
//
// Who may write a decision is not checked here: the API server's policy checks
// Kubernetes users, the controller checks Slack users when it records a click.
func (s *ApprovalGateSpec) Evaluate() Evaluation {
	ev := Evaluation{Required: s.Required(), Outcome: Outcome{State: StatePending}}
	seen := map[string]bool{}
	approvers := map[string][]Decision{} // option -> approvals in order
	var rejections []Decision
	for _, d := range latestPerApprover(s.Decisions) {
		if why := s.whyIgnored(d, seen); why != "" {
			ev.Ignored = append(ev.Ignored, Ignored{Decision: d, Why: why})
			continue
		}
		seen[d.By] = true
		ev.Counted = append(ev.Counted, d)
		if ev.Outcome.IsDecided() {
			continue // counted for the record, after the outcome
		}
		if d.Action == ActionReject {
			rejections = append(rejections, d)
			if len(rejections) >= s.RejectionsNeeded() {
				ev.Outcome = decided(StateRejected, "", rejections)
			}
			continue
		}
		opt := s.OptionOf(d)
		approvers[opt] = append(approvers[opt], d)
		ev.Approvals = max(ev.Approvals, len(approvers[opt]))
		if len(approvers[opt]) >= ev.Required {
			ev.Outcome = decided(StateApproved, opt, approvers[opt])
		}
	}
	return ev
}

// latestPerApprover keeps one entry per approver, where it first appeared,
// with its latest content (an approver may change their mind before the
// outcome).
func latestPerApprover(ds []Decision) []Decision {
	idx := map[string]int{}
	var out []Decision
	for _, d := range ds {
		if i, ok := idx[d.By]; ok {
			out[i] = d
			continue
		}
		idx[d.By] = len(out)
		out = append(out, d)
	}
	return out
}

func (s *ApprovalGateSpec) whyIgnored(d Decision, seen map[string]bool) string {
	switch {
	case strings.TrimSpace(d.By) == "":
		return "no by"
	case seen[d.By]:
		return "a second decision of " + d.By
	case d.Action != ActionApprove && d.Action != ActionReject:
		return fmt.Sprintf("action %q is neither approve nor reject", d.Action)
	case d.Action == ActionApprove && !s.HasOption(s.OptionOf(d)):
		return fmt.Sprintf("option %q is not offered", d.Option)
	case d.Action == ActionApprove && s.ForbidSelfApproval && s.RequestedBy != "" && d.By == s.RequestedBy:
		return "self-approval: " + d.By + " requested this gate"
	}
	return ""
}

func decided(state, choice string, by []Decision) Outcome {
	o := Outcome{State: state, Choice: choice}
	var msgs []string
	for _, d := range by {
		o.ChosenBy = append(o.ChosenBy, d.By)
		if d.Message != "" {
			msgs = append(msgs, d.By+": "+d.Message)
		}
	}
	o.Reason = strings.Join(msgs, "; ")
	return o
}
