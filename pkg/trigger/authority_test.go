package trigger

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
)

// tmplBlock is a handler block whose create-pipelinerun template is spec
// (the YAML of a PipelineRun's spec, indented under spec:).
func tmplBlock(spec string) string {
	return "name: target\ncreate-pipelinerun:\n  template: |\n    kind: PipelineRun\n    metadata: {generateName: target-}\n    spec:\n" + indent(spec, "      ")
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = by + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func policyCfg(yaml string) string {
	return "  trigger:\n    createPipelineRun:\n" + indent(yaml, "      ")
}

func wantRefused(t *testing.T, err error, reason string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("not refused, want %s", reason)
	}
	e := engine.AsError(err, "")
	if e.Reason != reason || e.Transient {
		t.Errorf("reason %s (transient %v), want %s: %v", e.Reason, e.Transient, reason, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("message %q does not say %q", err.Error(), p)
		}
	}
}

// The legitimate case: the new PipelineRun runs as the asking PipelineRun's
// service account, after a SubjectAccessReview for exactly that account,
// once.
func TestCreatesAsTheAskersServiceAccount(t *testing.T) {
	c, cs, sars := creatorWith(askingPR("builder", true, false), allowUsers("system:serviceaccount:team-a:builder"))
	resp, err := c.Trigger(asked(), call(t, "{name: target, create-pipelinerun: true}", ""))
	if err != nil {
		t.Fatal(err)
	}
	prs := created(t, cs)
	if len(prs) != 1 {
		t.Fatalf("%d PipelineRuns created, want 1", len(prs))
	}
	if sa := prs[0].Spec.TaskRunTemplate.ServiceAccountName; sa != "builder" {
		t.Errorf("runs as %q, want the asker's builder", sa)
	}
	if prs[0].Labels[LabelAskedBy] != "starter-1" {
		t.Errorf("labels %v", prs[0].Labels)
	}
	if !strings.Contains(resp.Body, `"serviceAccountName":"builder"`) {
		t.Errorf("response %s", resp.Body)
	}
	if len(*sars) != 1 {
		t.Fatalf("%d SubjectAccessReviews, want 1", len(*sars))
	}
	s := (*sars)[0].Spec
	if s.User != "system:serviceaccount:team-a:builder" || s.ResourceAttributes.Verb != "create" || s.ResourceAttributes.Resource != "pipelineruns" ||
		s.ResourceAttributes.Group != "tekton.dev" || s.ResourceAttributes.Namespace != "team-a" {
		t.Errorf("SubjectAccessReview %+v %+v", s, s.ResourceAttributes)
	}
	// a template may name the service account it gets anyway
	if _, err := c.Trigger(asked(), call(t, tmplBlock("pipelineRef: {name: target}\ntaskRunTemplate: {serviceAccountName: builder}"), "")); err != nil {
		t.Fatal(err)
	}
	if n := len(created(t, cs)); n != 2 {
		t.Errorf("%d PipelineRuns after the second trigger, want 2", n)
	}
}

func TestDefaultServiceAccountAndTaskRunSpecs(t *testing.T) {
	// no service account on the asking PipelineRun: "default"
	c, cs, _ := creatorWith(askingPR("", true, false), allowUsers("system:serviceaccount:team-a:default"))
	if _, err := c.Trigger(asked(), call(t, "{name: target, create-pipelinerun: true}", "")); err != nil {
		t.Fatal(err)
	}
	if sa := created(t, cs)[0].Spec.TaskRunTemplate.ServiceAccountName; sa != "default" {
		t.Errorf("runs as %q, want default", sa)
	}
	// the asking task's own service account (taskRunSpecs) is the asker's
	pr := askingPR("builder", true, false)
	pr.Spec.TaskRunSpecs = []v1.PipelineTaskRunSpec{{PipelineTaskName: "other", ServiceAccountName: "x"}, {PipelineTaskName: "fire", ServiceAccountName: "firer"}}
	c, cs, _ = creatorWith(pr, allowUsers("system:serviceaccount:team-a:firer"))
	if _, err := c.Trigger(asked(), call(t, "{name: target, create-pipelinerun: true}", "")); err != nil {
		t.Fatal(err)
	}
	if sa := created(t, cs)[0].Spec.TaskRunTemplate.ServiceAccountName; sa != "firer" {
		t.Errorf("runs as %q, want firer", sa)
	}
}

func TestAnotherServiceAccountIsRefused(t *testing.T) {
	for name, spec := range map[string]string{
		"taskRunTemplate": "pipelineRef: {name: target}\ntaskRunTemplate: {serviceAccountName: cluster-admin-sa}",
		"taskRunSpecs":    "pipelineRef: {name: target}\ntaskRunSpecs: [{pipelineTaskName: a, serviceAccountName: cluster-admin-sa}]",
	} {
		t.Run(name, func(t *testing.T) {
			c, cs, _ := creatorWith(askingPR("builder", true, false), allowUsers("system:serviceaccount:team-a:builder", "system:serviceaccount:team-a:cluster-admin-sa"))
			_, err := c.Trigger(asked(), call(t, tmplBlock(spec), ""))
			wantRefused(t, err, engine.ReasonInvalidAppConfig, `"cluster-admin-sa"`, `only as "builder"`, "starter-1", "remove")
			if n := len(created(t, cs)); n != 0 {
				t.Errorf("%d PipelineRuns created", n)
			}
		})
	}
}

func TestAdminNamesTheServiceAccount(t *testing.T) {
	c, cs, sars := creatorWith(askingPR("builder", true, false), allowUsers("system:serviceaccount:team-a:builder"))
	cfg := policyCfg("serviceAccount: triggered")
	if _, err := c.Trigger(asked(), call(t, "{name: target, create-pipelinerun: true}", cfg)); err != nil {
		t.Fatal(err)
	}
	if sa := created(t, cs)[0].Spec.TaskRunTemplate.ServiceAccountName; sa != "triggered" {
		t.Errorf("runs as %q, want the admin's triggered", sa)
	}
	if u := (*sars)[0].Spec.User; u != "system:serviceaccount:team-a:builder" {
		t.Errorf("SubjectAccessReview for %s, want the asker", u)
	}
	_, err := c.Trigger(asked(), call(t, tmplBlock("pipelineRef: {name: target}\ntaskRunTemplate: {serviceAccountName: builder}"), cfg))
	wantRefused(t, err, engine.ReasonInvalidAppConfig, `only as "triggered"`, "serviceAccount")
}

func TestInlineSpecsAreRefusedUnlessAllowed(t *testing.T) {
	inline := "pipelineSpec:\n  tasks:\n  - name: run\n    taskSpec:\n      steps: [{name: s, image: alpine, script: 'cat /var/run/secrets/kubernetes.io/serviceaccount/token'}]"
	c, cs, _ := creatorWith(askingPR("builder", true, false), allowUsers("system:serviceaccount:team-a:builder"))
	_, err := c.Trigger(asked(), call(t, tmplBlock(inline), ""))
	wantRefused(t, err, engine.ReasonInvalidAppConfig, "spec.pipelineSpec", "spec.pipelineSpec.tasks[0].taskSpec", "allowInlineSpecs: true")
	if n := len(created(t, cs)); n != 0 {
		t.Fatalf("%d PipelineRuns created", n)
	}
	// the admin allows them
	if _, err := c.Trigger(asked(), call(t, tmplBlock(inline), policyCfg("allowInlineSpecs: true"))); err != nil {
		t.Fatal(err)
	}
	prs := created(t, cs)
	if len(prs) != 1 || prs[0].Spec.TaskRunTemplate.ServiceAccountName != "builder" {
		t.Fatalf("allowed inline spec: %d created", len(prs))
	}
}

func TestResolversAreRefusedUnlessAllowed(t *testing.T) {
	remote := "pipelineRef:\n  resolver: git\n  params: [{name: url, value: https://example.com/p.git}]"
	c, cs, _ := creatorWith(askingPR("builder", true, false), allowUsers("system:serviceaccount:team-a:builder"))
	_, err := c.Trigger(asked(), call(t, tmplBlock(remote), ""))
	wantRefused(t, err, engine.ReasonInvalidAppConfig, "resolver git", "allowResolvers: true")
	if _, err := c.Trigger(asked(), call(t, tmplBlock(remote), policyCfg("allowResolvers: true"))); err != nil {
		t.Fatal(err)
	}
	if n := len(created(t, cs)); n != 1 {
		t.Fatalf("%d created", n)
	}
	_, err = c.Trigger(asked(), call(t, tmplBlock("params: []"), ""))
	wantRefused(t, err, engine.ReasonInvalidAppConfig, "names no pipeline")
}

func TestSubjectAccessReviewDenied(t *testing.T) {
	c, cs, sars := creatorWith(askingPR("builder", true, false), allowUsers())
	_, err := c.Trigger(asked(), call(t, "{name: target, create-pipelinerun: true}", ""))
	wantRefused(t, err, engine.ReasonEventHandlerFailed, `service account "builder"`, "may not create PipelineRuns in namespace team-a", "RoleBinding")
	if n := len(created(t, cs)); n != 0 {
		t.Fatalf("%d PipelineRuns created", n)
	}
	if len(*sars) != 1 {
		t.Errorf("%d SubjectAccessReviews", len(*sars))
	}
}

func TestWhoAskedIsVerified(t *testing.T) {
	block := "{name: target, create-pipelinerun: true}"
	allow := allowUsers("system:serviceaccount:team-a:builder")

	c, cs, _ := creatorWith(askingPR("builder", true, false), allow)
	_, err := c.Trigger(context.Background(), call(t, block, ""))
	wantRefused(t, err, engine.ReasonEventHandlerFailed, "which CustomRun asked")

	alone := engine.WithAskingRun(context.Background(), engine.AskingRun{Namespace: "team-a", CustomRun: "by-hand"})
	_, err = c.Trigger(alone, call(t, block, ""))
	wantRefused(t, err, engine.ReasonEventHandlerFailed, "not part of a PipelineRun", "by-hand")

	other := engine.WithAskingRun(context.Background(), engine.AskingRun{Namespace: "team-a", CustomRun: "starter-1-fire", PipelineRun: "starter-1", PipelineRunUID: "another-uid"})
	_, err = c.Trigger(other, call(t, block, ""))
	wantRefused(t, err, engine.ReasonEventHandlerFailed, "not the one that owns")

	missing := engine.WithAskingRun(context.Background(), engine.AskingRun{Namespace: "team-a", CustomRun: "x", PipelineRun: "gone"})
	_, err = c.Trigger(missing, call(t, block, ""))
	wantRefused(t, err, engine.ReasonEventHandlerFailed, "gone", "does not exist")

	// a CustomRun made by hand that names a PipelineRun which never ran it
	c2, cs2, _ := creatorWith(askingPR("builder", false, true), allow)
	_, err = c2.Trigger(asked(), call(t, block, ""))
	wantRefused(t, err, engine.ReasonEventHandlerFailed, "does not list CustomRun starter-1-fire")
	// ... while the PipelineRun runs: wait for Tekton to record its child
	c3, _, _ := creatorWith(askingPR("builder", false, false), allow)
	_, err = c3.Trigger(asked(), call(t, block, ""))
	var e *engine.Error
	if !errors.As(err, &e) || !e.Transient {
		t.Errorf("running PipelineRun without the child yet: %v, want a transient error", err)
	}
	if n := len(created(t, cs)) + len(created(t, cs2)); n != 0 {
		t.Fatalf("%d PipelineRuns created", n)
	}
}

func TestPolicyConfigErrors(t *testing.T) {
	c, _ := creator()
	for cfg, want := range map[string]string{
		policyCfg("allowInlineSpecs: 'yes'"): "true or false",
		policyCfg("serviceAccount: [a]"):     "service account name",
		policyCfg("allowEverything: true"):   "unknown key",
	} {
		_, err := c.Trigger(asked(), call(t, "{name: target, create-pipelinerun: true}", cfg))
		wantRefused(t, err, engine.ReasonInvalidConfig, want)
	}
}
