package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
)

func (c *clients) gates(ns string) dynamic.ResourceInterface {
	return c.dyn.Resource(v1alpha1.ApprovalGatesResource).Namespace(ns)
}

func (c *clients) gate(ctx context.Context, name string) (*v1alpha1.ApprovalGate, error) {
	u, err := c.gates(c.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return v1alpha1.FromUnstructured(u)
}

// listGates prints the gates of the namespace (or all): pending first, the
// longest waiting on top.
func listGates(ctx context.Context, c *clients, a args, out io.Writer) error {
	ns := c.namespace
	if c.all {
		ns = metav1.NamespaceAll
	}
	l, err := c.dyn.Resource(v1alpha1.ApprovalGatesResource).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var gs []*v1alpha1.ApprovalGate
	for i := range l.Items {
		g, err := v1alpha1.FromUnstructured(&l.Items[i])
		if err != nil {
			return err
		}
		gs = append(gs, g)
	}
	sort.SliceStable(gs, func(i, j int) bool {
		pi, pj := !gs[i].Status.Outcome.IsDecided(), !gs[j].Status.Outcome.IsDecided()
		if pi != pj {
			return pi
		}
		return gs[i].CreationTimestamp.Before(&gs[j].CreationTimestamp)
	})
	if len(gs) == 0 {
		fmt.Fprintln(out, "No approval gates found")
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if c.all {
		fmt.Fprint(w, "NAMESPACE\t")
	}
	fmt.Fprintln(w, "NAME\tPIPELINERUN\tTASK\tTITLE\tOPTIONS\tAPPROVALS\tSTATE\tWAITING SINCE")
	for _, g := range gs {
		if c.all {
			fmt.Fprintf(w, "%s\t", g.Namespace)
		}
		state := g.Status.Outcome.State
		if state == "" {
			state = v1alpha1.StatePending
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Name, dash(g.Labels["tekton.dev/pipelineRun"]), dash(g.Labels["tekton.dev/pipelineTask"]),
			dash(g.Spec.Title), optionValues(g.Spec.Options), approvals(g), state, since(g))
	}
	return w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func optionValues(os []v1alpha1.Option) string {
	vals := make([]string, len(os))
	for i, o := range os {
		vals[i] = o.Value
	}
	return strings.Join(vals, ",")
}

func approvals(g *v1alpha1.ApprovalGate) string {
	if g.Status.Approvals != "" {
		return g.Status.Approvals
	}
	return g.Spec.Evaluate().Summary()
}

func since(g *v1alpha1.ApprovalGate) string {
	t := g.CreationTimestamp.Time
	if g.Status.Outcome.IsDecided() {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), time.Since(t).Round(time.Second))
}

// describeGate prints one gate.
func describeGate(ctx context.Context, c *clients, name string, out io.Writer) error {
	g, err := c.gate(ctx, name)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	p := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, dash(v)) }
	p("Name", g.Namespace+"/"+g.Name)
	p("Title", g.Spec.Title)
	p("PipelineRun", g.Labels["tekton.dev/pipelineRun"])
	p("Task", g.Labels["tekton.dev/pipelineTask"])
	p("CustomRun", g.Spec.CustomRun.Name)
	p("Context", g.Spec.ContextID)
	var opts []string
	for _, o := range g.Spec.Options {
		opts = append(opts, fmt.Sprintf("%s (%s)", o.Value, o.Text))
	}
	p("Options", strings.Join(opts, ", "))
	ap := g.Spec.Approvers
	p("Approvers", strings.Join(ap.Users, ", "))
	p("Approver groups", strings.Join(ap.Groups, ", "))
	p("Slack approvers", strings.Join(ap.SlackUsers, ", "))
	p("Slack user groups", strings.Join(ap.SlackUserGroups, ", "))
	p("Approvals required", fmt.Sprint(g.Spec.Required()))
	p("Requested by", g.Spec.RequestedBy)
	p("Self-approval", map[bool]string{true: "forbidden", false: "allowed"}[g.Spec.ForbidSelfApproval])
	p("On timeout", map[bool]string{true: v1alpha1.OnTimeoutFail, false: g.Spec.OnTimeout}[g.Spec.OnTimeout == ""])
	p("Created", g.CreationTimestamp.UTC().Format(time.RFC3339))
	p("Approvals", approvals(g))
	o := g.Status.Outcome
	p("State", o.State)
	if o.IsDecided() {
		p("Choice", o.Choice)
		p("Chosen by", strings.Join(o.ChosenBy, ", "))
		p("Reason", o.Reason)
		if o.DecidedAt != nil {
			p("Decided at", o.DecidedAt.UTC().Format(time.RFC3339))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "Decisions:")
	if len(g.Spec.Decisions) == 0 {
		fmt.Fprintln(out, "  none yet")
	}
	for _, d := range g.Spec.Decisions {
		via := d.Via
		if via == "" {
			via = v1alpha1.ViaKubernetes
		}
		line := fmt.Sprintf("  %s (%s): %s", d.By, via, d.Action)
		if d.Action == v1alpha1.ActionApprove {
			line += " " + g.Spec.OptionOf(d)
		}
		if d.Message != "" {
			line += ": " + d.Message
		}
		fmt.Fprintln(out, line)
	}
	return nil
}

// whoAmI is the username the API server authenticates the kubeconfig as
// (a SelfSubjectReview): what a decision's `by` must be.
func whoAmI(ctx context.Context, c *clients) (string, error) {
	r, err := c.kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("asking the API server who you are: %w", err)
	}
	return r.Status.UserInfo.Username, nil
}

// decide records the user's approval or rejection with a JSON patch: append,
// or replace their own entry (guarded by a test of its by), so that nothing
// else of the object is sent. The API server's policy refuses anything but
// the user's own decision on a gate that names them.
func decide(ctx context.Context, c *clients, name, action, option, message string, out io.Writer) error {
	g, err := c.gate(ctx, name)
	if err != nil {
		return err
	}
	if g.Status.Outcome.IsDecided() {
		return fmt.Errorf("gate %s/%s is already decided: %s", g.Namespace, g.Name, g.Status.Outcome.State)
	}
	if option != "" && !g.Spec.HasOption(option) {
		return fmt.Errorf("option %q is not offered (options: %s)", option, optionValues(g.Spec.Options))
	}
	if action == v1alpha1.ActionReject && option != "" {
		return fmt.Errorf("a rejection names no option: give the reason with -m")
	}
	me, err := whoAmI(ctx, c)
	if err != nil {
		return err
	}
	d := v1alpha1.Decision{By: me, Via: v1alpha1.ViaKubernetes, Action: action, Option: option, Message: message, At: &metav1.Time{Time: time.Now().UTC().Truncate(time.Second)}}
	b, err := v1alpha1.DecisionPatch(g.Spec.Decisions, d)
	if err != nil {
		return err
	}
	if _, err := c.gates(c.namespace).Patch(ctx, name, types.JSONPatchType, b, metav1.PatchOptions{}); err != nil {
		return err
	}
	what := "rejected"
	if action == v1alpha1.ActionApprove {
		what = "approved " + g.Spec.OptionOf(d)
	}
	fmt.Fprintf(out, "%s/%s: %s as %s\n", g.Namespace, g.Name, what, me)
	return nil
}
