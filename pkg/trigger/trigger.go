// Package trigger starts pipelines for trigger-pipeline handlers without
// Tekton Triggers: with `create-pipelinerun` configured, the controller
// creates the PipelineRun itself, in the CustomRun's namespace, from a
// template, instead of POSTing to an EventListener.
package trigger

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	versioned "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// ConfigKey is the setting, under config.yaml `trigger` or in a handler
// block: `create-pipelinerun: true` (default template) or
// `create-pipelinerun: {template: <PipelineRun YAML template>}`.
const ConfigKey = "create-pipelinerun"

// DefaultTemplate runs the pipeline named by the handler with every payload
// entry (trigger auto-args, then the handler's args) as a string param.
const DefaultTemplate = `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  generateName: "{{ triggerPipeline.name }}-"
spec:
  pipelineRef:
    name: "{{ triggerPipeline.name }}"
  params:
{% for k, v in payload %}  - name: {{ k|tojson }}
    value: {{ v|tojson }}
{% endfor %}`

// Labels put on created PipelineRuns.
const (
	LabelContextID = "cicdstatemgr.dev/context-id"
	LabelEvent     = "cicdstatemgr.dev/event"
	// LabelAskedBy names the PipelineRun whose authority created it.
	LabelAskedBy = "cicdstatemgr.dev/asked-by"
)

// Creator creates PipelineRuns with the authority of the pipeline that
// asked (see authority.go and docs/security.md), never its own.
type Creator struct {
	Client versioned.Interface
	// Kube asks the API server whether the asking pipeline's service
	// account may create PipelineRuns (SubjectAccessReview).
	Kube      kubernetes.Interface
	Templates *tmpl.Env
	// Fallback performs the trigger when create-pipelinerun is not set
	// (handlers.Runner.PostTrigger).
	Fallback func(ctx context.Context, call *handlers.TriggerCall) (*httpclient.Response, error)
}

// Trigger is an handlers.Runner Trigger hook.
func (c *Creator) Trigger(ctx context.Context, call *handlers.TriggerCall) (*httpclient.Response, error) {
	tmpl, ok, err := templateFor(call)
	if err != nil {
		return nil, err
	}
	if !ok {
		return c.Fallback(ctx, call)
	}
	if call.Namespace == "" {
		return nil, engine.Errorf(engine.ReasonInvalidConfig, "create-pipelinerun works in the controller only (the CLI has no namespace): remove it or run the event from a CustomRun")
	}
	pol, err := policyOf(call.Config)
	if err != nil {
		return nil, err
	}
	asker, err := askerOf(ctx, call)
	if err != nil {
		return nil, err
	}
	pr, err := c.build(ctx, call, tmpl)
	if err != nil {
		return nil, err
	}
	if err := pol.checkSpec(pr); err != nil {
		return nil, err
	}
	auth, err := c.authority(ctx, asker, pol)
	if err != nil {
		return nil, err
	}
	if err := auth.apply(pr); err != nil {
		return nil, err
	}
	if err := c.mayCreate(ctx, auth); err != nil {
		return nil, err
	}
	pr.Labels[LabelAskedBy] = labelValue(asker.PipelineRun)
	created, err := c.Client.TektonV1().PipelineRuns(call.Namespace).Create(ctx, pr, metav1.CreateOptions{})
	if err != nil {
		return nil, &engine.Error{Reason: engine.ReasonEventHandlerFailed, Message: fmt.Sprintf("creating a PipelineRun of %q in %s: %v", pipelineName(pr), call.Namespace, err), Err: err}
	}
	body := document.NewMap()
	body.Set("name", created.Name)
	body.Set("namespace", created.Namespace)
	body.Set("pipeline", pipelineName(created))
	body.Set("serviceAccountName", created.Spec.TaskRunTemplate.ServiceAccountName)
	return &httpclient.Response{Status: 201, ContentType: "application/json", Body: document.MustJSON(body, document.JSONStyle{})}, nil
}

// templateFor finds create-pipelinerun in the handler block, else in config
// trigger; false means not configured.
func templateFor(call *handlers.TriggerCall) (string, bool, error) {
	v, ok := call.Block.Get(ConfigKey)
	if !ok && call.Config != nil {
		v, ok = call.Config.MapAt("trigger").Get(ConfigKey)
	}
	switch t := v.(type) {
	case nil:
		return "", false, nil
	case bool:
		return DefaultTemplate, t, nil
	case *document.Map:
		s, _ := t.GetString("template")
		if strings.TrimSpace(s) == "" {
			return DefaultTemplate, true, nil
		}
		return s, true, nil
	}
	if !ok {
		return "", false, nil
	}
	return "", false, engine.Errorf(engine.ReasonInvalidConfig, "%s must be true/false or {template: ...}, not a %s", ConfigKey, document.TypeName(v))
}

// build renders the template (context: the handler block's, plus payload)
// into a PipelineRun confined to the CustomRun's namespace.
func (c *Creator) build(ctx context.Context, call *handlers.TriggerCall, tmpl string) (*v1.PipelineRun, error) {
	tctx := document.CloneMap(call.Context)
	tctx.Set("payload", call.Payload)
	text, err := c.Templates.RenderContext(ctx, tmpl, tctx)
	if err != nil {
		return nil, engine.AsError(fmt.Errorf("create-pipelinerun template: %w", err), engine.ReasonTemplateError)
	}
	pr := &v1.PipelineRun{}
	if err := yaml.UnmarshalStrict([]byte(text), pr); err != nil {
		return nil, engine.Errorf(engine.ReasonInvalidConfig, "create-pipelinerun template did not render a PipelineRun: %v", err)
	}
	if pr.Kind != "" && pr.Kind != "PipelineRun" {
		return nil, engine.Errorf(engine.ReasonInvalidConfig, "create-pipelinerun template renders a %s, not a PipelineRun", pr.Kind)
	}
	// App configs are untrusted: a trigger may only start pipelines where
	// the CustomRun itself runs.
	if pr.Namespace != "" && pr.Namespace != call.Namespace {
		return nil, engine.Errorf(engine.ReasonInvalidConfig, "create-pipelinerun may only create PipelineRuns in the CustomRun's namespace %s, not %s", call.Namespace, pr.Namespace)
	}
	pr.Namespace = call.Namespace
	if pr.Name == "" && pr.GenerateName == "" {
		pr.GenerateName = call.Pipeline + "-"
	}
	if pr.Labels == nil {
		pr.Labels = map[string]string{}
	}
	if id, _, _ := document.Lookup(call.Context, "state.cicdContextDataId"); id != nil {
		pr.Labels[LabelContextID] = labelValue(fmt.Sprint(id))
	}
	pr.Labels[LabelEvent] = labelValue(call.Pipeline + "." + call.Event)
	return pr, nil
}

func pipelineName(pr *v1.PipelineRun) string {
	if pr.Spec.PipelineRef != nil {
		return pr.Spec.PipelineRef.Name
	}
	return ""
}

// labelValue trims a string to what Kubernetes accepts as a label value.
func labelValue(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			out = append(out, r)
		} else {
			out = append(out, '_')
		}
	}
	v := strings.Trim(string(out), "-_.")
	if len(v) > 63 {
		v = strings.Trim(v[:63], "-_.")
	}
	return v
}
