package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Where a decision came from (Decision.Via).
const (
	// ViaKubernetes: an approver updated the object; By is their Kubernetes
	// username, checked by the API server's admission policy.
	ViaKubernetes = "kubernetes"
	// ViaSlack: a signed Slack click, recorded by the controller; By is the
	// Slack user id Slack signed.
	ViaSlack = "slack"
	// ViaCLI: `cicdstatemgr decide` with Redis credentials, mirrored by the
	// controller; By is the operator's unverified --by.
	ViaCLI = "cli"
	// ViaTimeout: the gate's on-timeout option was taken.
	ViaTimeout = "timeout"
)

// What a decision says (Decision.Action).
const (
	ActionApprove = "approve"
	ActionReject  = "reject"
)

// States of Outcome.State.
const (
	StatePending   = "Pending"
	StateApproved  = "Approved"
	StateRejected  = "Rejected"
	StateTimedOut  = "TimedOut"
	StateCancelled = "Cancelled"
)

// OnTimeoutFail is the default of spec.onTimeout: the run fails with
// CustomRunTimedOut. Any other value is an option value taken at the timeout.
const OnTimeoutFail = "fail"

// ChosenByTimeout is Outcome.ChosenBy (and the result chosen-by) of a gate
// decided by its on-timeout option.
const ChosenByTimeout = "timeout"

// LabelGateKey holds the key of the gate in the controller's Redis record (the
// CustomRun UID): the Slack path finds the object of a clicked message by it.
const LabelGateKey = "cicdstatemgr.dev/gate-key"

// ApprovalGate is an approval gate a CustomRun waits at.
type ApprovalGate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ApprovalGateSpec   `json:"spec"`
	Status ApprovalGateStatus `json:"status,omitempty"`
}

// ApprovalGateList is a list of ApprovalGates.
type ApprovalGateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApprovalGate `json:"items"`
}

// ApprovalGateSpec is what is asked, who may answer, and the answers.
type ApprovalGateSpec struct {
	Title   string   `json:"title,omitempty"`
	Options []Option `json:"options"`
	// Approvers may decide. Empty: only Slack users may, as the gate's
	// message allows (no Kubernetes user is an approver by default).
	Approvers Approvers `json:"approvers,omitempty"`
	// ApprovalsRequired distinct approvers must approve the same option
	// (default 1).
	ApprovalsRequired int `json:"approvalsRequired,omitempty"`
	// RejectionsRequired distinct rejections reject the gate (default 1: a
	// single rejection).
	RejectionsRequired int `json:"rejectionsRequired,omitempty"`
	// ForbidSelfApproval: RequestedBy may not approve.
	ForbidSelfApproval bool   `json:"forbidSelfApproval,omitempty"`
	RequestedBy        string `json:"requestedBy,omitempty"`
	// OnTimeout is "fail" (default) or an option value taken at the timeout.
	OnTimeout string `json:"onTimeout,omitempty"`
	// CustomRun is the waiting run (also the object's controller owner).
	CustomRun CustomRunRef `json:"customRun"`
	// ContextID, Pipeline and Event name the cicd context and the handler.
	ContextID string `json:"contextId,omitempty"`
	Pipeline  string `json:"pipeline,omitempty"`
	Event     string `json:"event,omitempty"`
	// Decisions are the approvers' answers, one per approver (keyed by By),
	// in the order they arrived.
	Decisions []Decision `json:"decisions,omitempty"`
}

// Option is one answer of the gate.
type Option struct {
	Text  string `json:"text,omitempty"`
	Value string `json:"value"`
}

// Approvers name who may decide.
type Approvers struct {
	// Users and Groups are Kubernetes usernames and groups (as the API server
	// authenticates them).
	Users  []string `json:"users,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// SlackUsers are Slack user ids (U…, W…); SlackUserGroups are Slack user
	// group ids (S…), resolved through the Slack API at each click.
	SlackUsers      []string `json:"slackUsers,omitempty"`
	SlackUserGroups []string `json:"slackUserGroups,omitempty"`
}

// CustomRunRef names the waiting CustomRun.
type CustomRunRef struct {
	Name string    `json:"name"`
	UID  types.UID `json:"uid,omitempty"`
}

// Decision is one approver's answer.
type Decision struct {
	// By is who decided: the Kubernetes username (via kubernetes), the Slack
	// user id (via slack), the operator's --by (via cli).
	By  string `json:"by"`
	Via string `json:"via,omitempty"`
	// Action is approve or reject.
	Action string `json:"action"`
	// Option is the option value approved; empty means the first option.
	Option string `json:"option,omitempty"`
	// Message is the approver's comment or reason.
	Message string `json:"message,omitempty"`
	// UserName is a Slack username, for display only.
	UserName string `json:"userName,omitempty"`
	// At is when the controller first saw the decision (status) or when the
	// writer says it decided (spec, informational).
	At *metav1.Time `json:"at,omitempty"`
}

// ApprovalGateStatus is what the controller made of the decisions.
type ApprovalGateStatus struct {
	// Decisions counted, in order, each with the time the controller first
	// saw it.
	Decisions []Decision `json:"decisions,omitempty"`
	// Approvals is "<approvals of the leading option>/<required>".
	Approvals string  `json:"approvals,omitempty"`
	Outcome   Outcome `json:"outcome,omitempty"`
	// SlackNotified is the last state posted to the gate's Slack message.
	SlackNotified string `json:"slackNotified,omitempty"`
}

// Outcome is the one result of the gate.
type Outcome struct {
	State    string   `json:"state,omitempty"`
	Choice   string   `json:"choice,omitempty"`
	ChosenBy []string `json:"chosenBy,omitempty"`
	// Reason is the approvers' messages (a rejection's reason), or why the gate
	// closed.
	Reason    string       `json:"reason,omitempty"`
	DecidedAt *metav1.Time `json:"decidedAt,omitempty"`
}

// IsDecided reports whether the outcome is final (anything but Pending).
func (o Outcome) IsDecided() bool { return o.State != "" && o.State != StatePending }
