package reconciler

import (
	"strconv"
	"strings"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
)

// Params of an approval gate (handle-event with a manual-choice `wait: true`).
// They describe the ApprovalGate the controller creates (docs/gates.md).
const (
	// ParamApprovers: Kubernetes usernames who may decide.
	ParamApprovers = "approvers"
	// ParamApproverGroups: Kubernetes groups whose members may decide.
	ParamApproverGroups = "approver-groups"
	// ParamApproverSlackGroups: Slack user group ids (S…) whose members may
	// decide by clicking (the block's allowed-users are the Slack user ids).
	ParamApproverSlackGroups = "approver-slack-groups"
	// ParamApprovalsRequired: distinct approvers needed (default 1).
	ParamApprovalsRequired = "approvals-required"
	// ParamRejectionsRequired: distinct rejections that reject (default 1).
	ParamRejectionsRequired = "rejections-required"
	// ParamForbidSelfApproval: "true" keeps requested-by from approving.
	ParamForbidSelfApproval = "forbid-self-approval"
	// ParamRequestedBy: who asked (a Kubernetes username or Slack user id).
	ParamRequestedBy = "requested-by"
	// ParamOnTimeout: "fail" (default) or an option value taken at the
	// timeout (the run then succeeds with chosen-by "timeout").
	ParamOnTimeout = "on-timeout"
)

// Results of a decided approval gate besides choice and chosen-by.
const (
	ResultReason    = "reason"
	ResultDecidedAt = "decided-at"
)

// The gate params join the CustomRun contract here, next to the code that
// reads them, so that the gate is one piece.
func init() {
	for _, n := range []string{ParamApprovalsRequired, ParamRejectionsRequired, ParamForbidSelfApproval, ParamRequestedBy, ParamOnTimeout} {
		stringParams[n] = true
	}
	for _, n := range []string{ParamApprovers, ParamApproverGroups, ParamApproverSlackGroups} {
		arrayParams[n] = true
	}
}

// gateParams are the approval gate params of a run.
type gateParams struct {
	approvers          v1alpha1.Approvers
	approvalsRequired  int
	rejectionsRequired int
	forbidSelf         bool
	requestedBy        string
	onTimeout          string
}

// parseGateParams reads the gate params; a malformed one is InvalidParams.
func parseGateParams(run *v1beta1.CustomRun) (gateParams, error) {
	list := func(n string) []string {
		p := run.Spec.GetParam(n)
		if p == nil {
			return nil
		}
		if p.Value.Type == v1beta1.ParamTypeString {
			if p.Value.StringVal == "" {
				return nil
			}
			return []string{p.Value.StringVal}
		}
		return p.Value.ArrayVal
	}
	g := gateParams{
		approvers:   v1alpha1.Approvers{Users: list(ParamApprovers), Groups: list(ParamApproverGroups), SlackUserGroups: list(ParamApproverSlackGroups)},
		requestedBy: strings.TrimSpace(paramString(run, ParamRequestedBy)),
		onTimeout:   strings.TrimSpace(paramString(run, ParamOnTimeout)),
	}
	var err error
	if g.approvalsRequired, err = positive(run, ParamApprovalsRequired); err != nil {
		return g, err
	}
	if g.rejectionsRequired, err = positive(run, ParamRejectionsRequired); err != nil {
		return g, err
	}
	if s := strings.TrimSpace(paramString(run, ParamForbidSelfApproval)); s != "" {
		if g.forbidSelf, err = strconv.ParseBool(s); err != nil {
			return g, invalid("param %q must be true or false, got %q", ParamForbidSelfApproval, s)
		}
	}
	if g.forbidSelf && g.requestedBy == "" {
		return g, invalid("param %q needs param %q (who asked)", ParamForbidSelfApproval, ParamRequestedBy)
	}
	return g, nil
}

// positive reads an optional count param: 1 when absent, else an integer
// from 1 to 100 (the CRD's bounds).
func positive(run *v1beta1.CustomRun, name string) (int, error) {
	s := strings.TrimSpace(paramString(run, name))
	if s == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100 {
		return 0, invalid("param %q must be a whole number from 1 to 100, got %q", name, s)
	}
	return n, nil
}

// onTimeoutOption is the option a timed-out gate takes, "" to fail.
func (g gateParams) onTimeoutOption() string {
	if g.onTimeout == "" || g.onTimeout == v1alpha1.OnTimeoutFail {
		return ""
	}
	return g.onTimeout
}
