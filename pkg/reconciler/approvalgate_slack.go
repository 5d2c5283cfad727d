package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"knative.dev/pkg/logging"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
)

// Vote records a signed Slack click as a decision in the gate's ApprovalGate
// (gate.Store.Vote): the object's quorum rules then decide. The clicker must
// be among spec.approvers.slackUsers or a member of one of
// spec.approvers.slackUserGroups (asked of Slack at each click, so a change
// of the group applies at once); a gate that names no approver at all may be
// answered by anyone who can click, as before gates had objects.
func (a *ApprovalGates) Vote(ctx context.Context, p gate.Gate, d gate.Decision) error {
	ag, err := a.byKey(ctx, p.Key)
	if err != nil {
		return err
	}
	if ag == nil {
		if a.isRun(p.Key) {
			return gate.ErrNotOpen
		}
		return gate.ErrNoObject
	}
	if !ag.Spec.HasOption(d.Choice) {
		return &gate.InvalidChoiceError{Choice: d.Choice, Options: p.Options}
	}
	ok, err := a.slackApprover(ctx, ag.Spec.Approvers, d.UserID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s is not an approver of %q", gate.ErrNotAllowed, d.UserID, ag.Spec.Title)
	}
	if ag.Spec.ForbidSelfApproval && ag.Spec.RequestedBy == d.UserID {
		return fmt.Errorf("%w: %s requested this gate and may not approve it", gate.ErrNotAllowed, d.UserID)
	}
	x := v1alpha1.Decision{By: d.UserID, Via: v1alpha1.ViaSlack, Action: v1alpha1.ActionApprove, Option: d.Choice,
		UserName: d.UserName, At: &metav1.Time{Time: d.At.UTC().Truncate(time.Second)}}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		// read live: the cache may not have the last write yet
		u, err := a.resource(ag.Namespace).Get(ctx, ag.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur, err := v1alpha1.FromUnstructured(u)
		if err != nil {
			return err
		}
		if cur.Status.Outcome.IsDecided() {
			return fmt.Errorf("%w: the gate is %s", gate.ErrCancelled, cur.Status.Outcome.State)
		}
		cur.Spec.Decisions = withDecision(cur.Spec.Decisions, x)
		if u, err = v1alpha1.ToUnstructured(cur); err != nil {
			return err
		}
		_, err = a.resource(cur.Namespace).Update(ctx, u, metav1.UpdateOptions{})
		return err
	})
}

// withDecision replaces the entry of x.By, or appends x.
func withDecision(ds []v1alpha1.Decision, x v1alpha1.Decision) []v1alpha1.Decision {
	for i := range ds {
		if ds[i].By == x.By {
			out := append([]v1alpha1.Decision(nil), ds...)
			out[i] = x
			return out
		}
	}
	return append(ds, x)
}

// slackApprover reports whether the Slack user id may decide.
func (a *ApprovalGates) slackApprover(ctx context.Context, ap v1alpha1.Approvers, userID string) (bool, error) {
	if len(ap.SlackUsers) == 0 && len(ap.SlackUserGroups) == 0 {
		return len(ap.Users) == 0 && len(ap.Groups) == 0, nil
	}
	if !gate.ValidUserID(userID) {
		return false, nil
	}
	if contains(ap.SlackUsers, userID) {
		return true, nil
	}
	if len(ap.SlackUserGroups) == 0 {
		return false, nil
	}
	_, cfg, err := a.Source.Current()
	if err != nil {
		return false, err
	}
	for _, g := range ap.SlackUserGroups {
		members, err := slackGroupMembers(ctx, cfg, g)
		if err != nil {
			return false, err
		}
		if contains(members, userID) {
			return true, nil
		}
	}
	return false, nil
}

// slackAPI is the URL of a Slack Web API method next to slack.url: slack.url
// is the chat.postMessage endpoint (https://slack.com/api/chat.postMessage),
// or a base URL the methods are under.
func slackAPI(cfg *config.Config, method string) string {
	u, err := url.Parse(cfg.StringAt("slack.url"))
	if err != nil {
		return ""
	}
	u.RawQuery, u.Fragment = "", ""
	if i := strings.LastIndex(u.Path, "/"); i >= 0 && strings.Contains(u.Path[i+1:], ".") {
		u.Path = u.Path[:i]
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + method
	return u.String()
}

// slackGroupMembers asks Slack for the user ids of a user group
// (usergroups.users.list, with the bot token; scope usergroups:read).
func slackGroupMembers(ctx context.Context, cfg *config.Config, group string) ([]string, error) {
	var reply struct {
		OK    bool     `json:"ok"`
		Users []string `json:"users"`
		Error string   `json:"error"`
	}
	u := slackAPI(cfg, "usergroups.users.list") + "?usergroup=" + url.QueryEscape(group)
	if err := slackCall(ctx, cfg, "GET", u, nil, &reply); err != nil {
		return nil, err
	}
	if !reply.OK {
		return nil, fmt.Errorf("slack usergroups.users.list %s: %s", group, reply.Error)
	}
	return reply.Users, nil
}

func slackCall(ctx context.Context, cfg *config.Config, method, u string, body any, reply any) error {
	req := httpclient.Request{Method: method, URL: u, Headers: []httpclient.Header{{Name: "Authorization", Value: "Bearer " + cfg.SecretStringAt("slack.token")}}}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		req.Body = b
		req.Headers = append(req.Headers, httpclient.Header{Name: "Content-Type", Value: "application/json; charset=utf-8"})
	}
	c := &httpclient.Client{Timeout: 5 * time.Second, Attempts: 2}
	res, err := c.Do(ctx, req)
	if err != nil {
		return err
	}
	if reply != nil {
		return json.Unmarshal([]byte(res.Body), reply)
	}
	return nil
}

// notifySlack updates the gate's Slack message (chat.update of the channel
// and ts recorded when it was posted) when its state changed since the last
// update: who decided what and why, the buttons kept while the gate waits and
// removed once it is decided. It returns the state now shown (the previous
// one when the update failed: the next reconcile tries again).
func (a *ApprovalGates) notifySlack(ctx context.Context, ag *v1alpha1.ApprovalGate, p gate.Gate) string {
	shown := fmt.Sprintf("%s %s %d", ag.Status.Outcome.State, ag.Status.Approvals, len(ag.Status.Decisions))
	if p.SlackChannel == "" || p.SlackTS == "" || shown == ag.Status.SlackNotified {
		return ag.Status.SlackNotified
	}
	if !ag.Status.Outcome.IsDecided() && len(ag.Status.Decisions) == 0 {
		return ag.Status.SlackNotified // the message as posted says it all
	}
	_, cfg, err := a.Source.Current()
	if err != nil || cfg.StringAt("slack.url") == "" {
		return ag.Status.SlackNotified
	}
	var reply struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := slackCall(ctx, cfg, "POST", slackAPI(cfg, "chat.update"), slackMessage(ag, p), &reply); err != nil || !reply.OK {
		logging.FromContext(ctx).Infow("could not update the approval gate's Slack message", "gate", ag.Name, "error", err, "slackError", reply.Error)
		return ag.Status.SlackNotified
	}
	return shown
}

// slackMessage is the chat.update body of the gate's message.
func slackMessage(ag *v1alpha1.ApprovalGate, p gate.Gate) map[string]any {
	title := ag.Spec.Title
	if title == "" {
		title = "Approval"
	}
	line := summary(ag.Spec, ag.Status)
	blocks := []any{map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "*" + title + "*\n" + line}}}
	if len(ag.Status.Decisions) > 0 {
		var els []any
		for _, x := range ag.Status.Decisions {
			els = append(els, map[string]any{"type": "mrkdwn", "text": describeDecision(x)})
		}
		blocks = append(blocks, map[string]any{"type": "context", "elements": els})
	}
	if !ag.Status.Outcome.IsDecided() {
		var buttons []any
		for i, o := range ag.Spec.Options {
			text := o.Text
			if text == "" {
				text = o.Value
			}
			buttons = append(buttons, map[string]any{"type": "button", "action_id": fmt.Sprintf("option-%d", i),
				"text": map[string]any{"type": "plain_text", "text": text}, "value": o.Value})
		}
		blocks = append(blocks, map[string]any{"type": "actions", "elements": buttons})
	}
	return map[string]any{"channel": p.SlackChannel, "ts": p.SlackTS, "text": title + ": " + line, "blocks": blocks}
}
