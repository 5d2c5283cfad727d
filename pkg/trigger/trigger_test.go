package trigger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	faketekton "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fakekube "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"knative.dev/pkg/apis"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

var errFallback = errors.New("fallback called")

func call(t *testing.T, block, cfgYAML string) *handlers.TriggerCall {
	t.Helper()
	b, err := document.ParseYAMLMap([]byte(block))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("cicdstatemgr:\n  unused: 1\n"+cfgYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := document.NewMap()
	payload.Set("zeta", "1")
	payload.Set("alpha", `two "quoted"`)
	ctx, _ := document.ParseYAMLMap([]byte("state: {cicdContextDataId: ctx-1, v: '9'}"))
	name, _ := b.GetString("name")
	tp := document.CloneMap(b)
	ctx.Set("triggerPipeline", tp)
	_ = name
	return &handlers.TriggerCall{Pipeline: "build", Event: "done", Namespace: "team-a", Config: cfg, Name: "default", Block: b, Context: ctx, Payload: payload}
}

// creator returns a Creator whose asking PipelineRun (starter-1 of team-a,
// running CustomRun starter-1-fire) runs as service account "builder", and
// whose SubjectAccessReviews allow that service account.
func creator() (*Creator, *faketekton.Clientset) {
	c, cs, _ := creatorWith(askingPR("builder", true, false), allowUsers("system:serviceaccount:team-a:builder"))
	return c, cs
}

func allowUsers(users ...string) func(*authv1.SubjectAccessReview) bool {
	return func(sar *authv1.SubjectAccessReview) bool {
		a := sar.Spec.ResourceAttributes
		if a == nil || a.Verb != "create" || a.Group != "tekton.dev" || a.Resource != "pipelineruns" || a.Namespace != "team-a" {
			return false
		}
		for _, u := range users {
			if sar.Spec.User == u {
				return true
			}
		}
		return false
	}
}

// creatorWith returns a Creator over fake clientsets holding asking (if not
// nil); allow answers the SubjectAccessReviews, which are recorded.
func creatorWith(asking *v1.PipelineRun, allow func(*authv1.SubjectAccessReview) bool) (*Creator, *faketekton.Clientset, *[]authv1.SubjectAccessReview) {
	var objs []runtime.Object
	if asking != nil {
		objs = append(objs, asking)
	}
	cs := faketekton.NewSimpleClientset(objs...)
	n := 0
	cs.PrependReactor("create", "pipelineruns", func(action k8stesting.Action) (bool, runtime.Object, error) {
		// the API server's generateName
		if pr := action.(k8stesting.CreateAction).GetObject().(*v1.PipelineRun); pr.Name == "" {
			n++
			pr.Name = fmt.Sprintf("%s%05d", pr.GenerateName, n)
		}
		return false, nil, nil
	})
	kube := fakekube.NewSimpleClientset()
	var sars []authv1.SubjectAccessReview
	kube.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		sar := action.(k8stesting.CreateAction).GetObject().(*authv1.SubjectAccessReview).DeepCopy()
		sar.Status.Allowed = allow(sar)
		if !sar.Status.Allowed {
			sar.Status.Reason = "no RBAC policy matched"
		}
		sars = append(sars, *sar)
		return true, sar, nil
	})
	return &Creator{Client: cs, Kube: kube, Templates: tmpl.New(tmpl.Options{}),
		Fallback: func(context.Context, *handlers.TriggerCall) (*httpclient.Response, error) { return nil, errFallback }}, cs, &sars
}

// askingPR is the PipelineRun starter-1 running as sa; child: it lists
// CustomRun starter-1-fire among its children; done: it has finished.
func askingPR(sa string, child, done bool) *v1.PipelineRun {
	pr := &v1.PipelineRun{ObjectMeta: metav1.ObjectMeta{Name: "starter-1", Namespace: "team-a", UID: "pr-uid"}}
	pr.Spec.PipelineRef = &v1.PipelineRef{Name: "starter"}
	pr.Spec.TaskRunTemplate.ServiceAccountName = sa
	if child {
		pr.Status.ChildReferences = []v1.ChildStatusReference{{TypeMeta: runtime.TypeMeta{APIVersion: "tekton.dev/v1beta1", Kind: "CustomRun"}, Name: "starter-1-fire", PipelineTaskName: "fire"}}
	}
	st := corev1.ConditionUnknown
	if done {
		st = corev1.ConditionTrue
	}
	pr.Status.SetCondition(&apis.Condition{Type: apis.ConditionSucceeded, Status: st})
	return pr
}

// asked is the context of an op run by CustomRun starter-1-fire of
// PipelineRun starter-1.
func asked() context.Context {
	return engine.WithAskingRun(context.Background(), engine.AskingRun{Namespace: "team-a", CustomRun: "starter-1-fire", CustomRunUID: "cr-uid",
		PipelineTask: "fire", PipelineRun: "starter-1", PipelineRunUID: "pr-uid"})
}

// created lists the PipelineRuns the Creator made (not the asking one).
func created(t *testing.T, cs *faketekton.Clientset) []v1.PipelineRun {
	t.Helper()
	prs, err := cs.TektonV1().PipelineRuns("team-a").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.PipelineRun
	for _, pr := range prs.Items {
		if pr.Name != "starter-1" {
			out = append(out, pr)
		}
	}
	return out
}

func TestDefaultTemplateCreatesThePipelineRun(t *testing.T) {
	c, cs := creator()
	resp, err := c.Trigger(asked(), call(t, "{name: deploy, create-pipelinerun: true}", ""))
	if err != nil {
		t.Fatal(err)
	}
	prs := created(t, cs)
	if len(prs) != 1 {
		t.Fatalf("%d PipelineRuns", len(prs))
	}
	pr := prs[0]
	if pr.GenerateName != "deploy-" || pr.Spec.PipelineRef.Name != "deploy" {
		t.Errorf("generateName %q pipelineRef %+v", pr.GenerateName, pr.Spec.PipelineRef)
	}
	if len(pr.Spec.Params) != 2 || pr.Spec.Params[0].Name != "zeta" || pr.Spec.Params[1].Value.StringVal != `two "quoted"` {
		t.Errorf("params %+v (want payload order, values intact)", pr.Spec.Params)
	}
	if pr.Labels[LabelContextID] != "ctx-1" || pr.Labels[LabelEvent] != "build.done" {
		t.Errorf("labels %v", pr.Labels)
	}
	if resp.Status != 201 || !strings.Contains(resp.Body, `"pipeline":"deploy"`) {
		t.Errorf("response %+v", resp)
	}
}

func TestConfigAndCustomTemplate(t *testing.T) {
	c, cs := creator()
	cfg := "  trigger:\n    create-pipelinerun:\n      template: |\n        kind: PipelineRun\n        metadata: {name: 'run-{{ state.v }}'}\n        spec: {pipelineRef: {name: x}}\n"
	if _, err := c.Trigger(asked(), call(t, "{name: x}", cfg)); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.TektonV1().PipelineRuns("team-a").Get(context.Background(), "run-9", metav1.GetOptions{}); err != nil {
		t.Fatalf("custom template: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name, block, cfg, want string
	}{
		{"not configured falls back", "{name: x}", "", errFallback.Error()},
		{"disabled falls back", "{name: x, create-pipelinerun: false}", "", errFallback.Error()},
		{"another namespace", "{name: x, create-pipelinerun: {template: 'metadata: {name: a, namespace: kube-system}'}}", "", "namespace team-a"},
		{"template error", "{name: x, create-pipelinerun: {template: '{{ nope.x }}'}}", "", "template"},
		{"not a PipelineRun", "{name: x, create-pipelinerun: {template: 'kind: Secret'}}", "", "not a PipelineRun"},
		{"bad setting", "{name: x, create-pipelinerun: 3}", "", "true/false"},
	}
	for _, c := range cases {
		cr, _ := creator()
		_, err := cr.Trigger(asked(), call(t, c.block, c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}
