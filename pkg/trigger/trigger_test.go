package trigger

import (
	"context"
	"errors"
	"strings"
	"testing"

	faketekton "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
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

func creator() (*Creator, *faketekton.Clientset) {
	cs := faketekton.NewSimpleClientset()
	return &Creator{Client: cs, Templates: tmpl.New(tmpl.Options{}),
		Fallback: func(context.Context, *handlers.TriggerCall) (*httpclient.Response, error) { return nil, errFallback }}, cs
}

func TestDefaultTemplateCreatesThePipelineRun(t *testing.T) {
	c, cs := creator()
	resp, err := c.Trigger(context.Background(), call(t, "{name: deploy, create-pipelinerun: true}", ""))
	if err != nil {
		t.Fatal(err)
	}
	prs, _ := cs.TektonV1().PipelineRuns("team-a").List(context.Background(), metav1.ListOptions{})
	if len(prs.Items) != 1 {
		t.Fatalf("%d PipelineRuns", len(prs.Items))
	}
	pr := prs.Items[0]
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
	if _, err := c.Trigger(context.Background(), call(t, "{name: x}", cfg)); err != nil {
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
		_, err := cr.Trigger(context.Background(), call(t, c.block, c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}
