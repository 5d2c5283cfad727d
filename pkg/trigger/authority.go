package trigger

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
)

// The controller may create PipelineRuns in every namespace; create-pipelinerun
// must not lend that power to whoever writes an app config or a CustomRun.
// It creates only PipelineRuns that the PipelineRun which asked could have
// created itself:
//
//   - the asking PipelineRun is the one that runs the CustomRun (its
//     ownerReference, else its tekton.dev/pipelineRun label), and it lists
//     the CustomRun among its children (status.childReferences): a
//     CustomRun made by hand cannot borrow another pipeline's identity;
//   - the new PipelineRun runs as the asking PipelineRun's service account
//     (of the CustomRun's pipeline task; `default` when none is set), or as
//     the one the admin names in config.yaml; a template naming any other
//     service account is refused;
//   - only pipelineRef by name (a Pipeline of the namespace): inline
//     pipelineSpec/taskSpec and remote resolvers are refused unless the
//     admin allows them;
//   - a SubjectAccessReview confirms that the asking service account may
//     create PipelineRuns in the namespace.

// PolicyKey is the admin's setting, under config.yaml `trigger`:
//
//	trigger:
//	  createPipelineRun:
//	    serviceAccount: ""        # run created PipelineRuns as this SA instead of the asker's
//	    allowInlineSpecs: false   # allow pipelineSpec / taskSpec in templates
//	    allowResolvers: false     # allow pipelineRef.resolver (git, bundles, hub, cluster, ...)
const PolicyKey = "createPipelineRun"

// DefaultServiceAccount is what a PipelineRun without a service account runs
// as (Tekton's default default-service-account).
const DefaultServiceAccount = "default"

// Policy is the admin's createPipelineRun setting.
type Policy struct {
	ServiceAccount   string
	AllowInlineSpecs bool
	AllowResolvers   bool
}

func policyOf(cfg *config.Config) (Policy, error) {
	var p Policy
	if cfg == nil {
		return p, nil
	}
	m := cfg.MapAt("trigger." + PolicyKey)
	if m == nil {
		return p, nil
	}
	bad := func(key, want string, v any) error {
		return engine.Errorf(engine.ReasonInvalidConfig, "config.yaml trigger.%s.%s must be %s, not a %s", PolicyKey, key, want, document.TypeName(v))
	}
	for _, k := range m.Keys() {
		v, _ := m.Get(k)
		switch k {
		case "serviceAccount":
			s, ok := v.(string)
			if !ok && v != nil {
				return p, bad(k, "a service account name", v)
			}
			p.ServiceAccount = strings.TrimSpace(s)
		case "allowInlineSpecs", "allowResolvers":
			b, ok := v.(bool)
			if !ok && v != nil {
				return p, bad(k, "true or false", v)
			}
			if k == "allowInlineSpecs" {
				p.AllowInlineSpecs = b
			} else {
				p.AllowResolvers = b
			}
		default:
			return p, engine.Errorf(engine.ReasonInvalidConfig, "config.yaml trigger.%s has an unknown key %q (known: serviceAccount, allowInlineSpecs, allowResolvers)", PolicyKey, k)
		}
	}
	return p, nil
}

// askerOf returns the CustomRun asking and its PipelineRun; a CustomRun not
// run by a PipelineRun is refused: there is no pipeline whose authority the
// controller could act with.
func askerOf(ctx context.Context, call *handlers.TriggerCall) (engine.AskingRun, error) {
	a, ok := engine.AskingRunFrom(ctx)
	if !ok {
		return a, engine.Errorf(engine.ReasonEventHandlerFailed, "create-pipelinerun refused: the controller does not know which CustomRun asked, so it cannot act with its authority")
	}
	if a.PipelineRun == "" {
		return a, engine.Errorf(engine.ReasonEventHandlerFailed, "create-pipelinerun refused: CustomRun %s/%s is not part of a PipelineRun (no ownerReference of kind PipelineRun, no tekton.dev/pipelineRun label), and the controller creates PipelineRuns only with the authority of the PipelineRun that asks: run this event from a task of a pipeline", a.Namespace, a.CustomRun)
	}
	if a.Namespace != call.Namespace {
		return a, engine.Errorf(engine.ReasonEventHandlerFailed, "create-pipelinerun refused: the CustomRun runs in %s, the PipelineRun would be created in %s", a.Namespace, call.Namespace)
	}
	return a, nil
}

// checkSpec refuses what the admin has not allowed: inline specs anywhere,
// remote resolvers, and a PipelineRun that names no Pipeline.
func (p Policy) checkSpec(pr *v1.PipelineRun) error {
	if !p.AllowInlineSpecs {
		if inline := inlineSpecs(pr); len(inline) > 0 {
			return engine.Errorf(engine.ReasonInvalidAppConfig, "create-pipelinerun refused: the template has inline specs (%s); only pipelineRef by name (a Pipeline of the namespace) is allowed. Apply the pipeline as a Pipeline and name it in pipelineRef, or ask the admin to set trigger.%s.allowInlineSpecs: true in config-cicdstatemgr", strings.Join(inline, ", "), PolicyKey)
		}
	}
	if !p.AllowResolvers {
		if remote := resolvers(pr); len(remote) > 0 {
			return engine.Errorf(engine.ReasonInvalidAppConfig, "create-pipelinerun refused: the template uses remote resolvers (%s); only Pipelines of the namespace are allowed. Apply the pipeline in the namespace and name it in pipelineRef, or ask the admin to set trigger.%s.allowResolvers: true in config-cicdstatemgr", strings.Join(remote, ", "), PolicyKey)
		}
	}
	if pr.Spec.PipelineSpec == nil && (pr.Spec.PipelineRef == nil || (pr.Spec.PipelineRef.Name == "" && pr.Spec.PipelineRef.Resolver == "")) {
		return engine.Errorf(engine.ReasonInvalidAppConfig, "create-pipelinerun refused: the template names no pipeline: set spec.pipelineRef.name")
	}
	return nil
}

func inlineSpecs(pr *v1.PipelineRun) []string {
	var out []string
	if pr.Spec.PipelineSpec != nil {
		out = append(out, "spec.pipelineSpec")
		out = append(out, inlineInPipeline("spec.pipelineSpec", pr.Spec.PipelineSpec)...)
	}
	return out
}

func inlineInPipeline(at string, ps *v1.PipelineSpec) []string {
	var out []string
	walk := func(list string, tasks []v1.PipelineTask) {
		for i, t := range tasks {
			p := fmt.Sprintf("%s.%s[%d]", at, list, i)
			if t.TaskSpec != nil {
				out = append(out, p+".taskSpec")
			}
			if t.PipelineSpec != nil {
				out = append(out, p+".pipelineSpec")
				out = append(out, inlineInPipeline(p+".pipelineSpec", t.PipelineSpec)...)
			}
		}
	}
	walk("tasks", ps.Tasks)
	walk("finally", ps.Finally)
	return out
}

func resolvers(pr *v1.PipelineRun) []string {
	var out []string
	if r := pr.Spec.PipelineRef; r != nil && r.Resolver != "" {
		out = append(out, fmt.Sprintf("spec.pipelineRef.resolver %s", r.Resolver))
	}
	var walk func(at string, ps *v1.PipelineSpec)
	walk = func(at string, ps *v1.PipelineSpec) {
		for _, l := range []struct {
			name  string
			tasks []v1.PipelineTask
		}{{"tasks", ps.Tasks}, {"finally", ps.Finally}} {
			for i, t := range l.tasks {
				p := fmt.Sprintf("%s.%s[%d]", at, l.name, i)
				if t.TaskRef != nil && t.TaskRef.Resolver != "" {
					out = append(out, fmt.Sprintf("%s.taskRef.resolver %s", p, t.TaskRef.Resolver))
				}
				if t.PipelineRef != nil && t.PipelineRef.Resolver != "" {
					out = append(out, fmt.Sprintf("%s.pipelineRef.resolver %s", p, t.PipelineRef.Resolver))
				}
				if t.PipelineSpec != nil {
					walk(p+".pipelineSpec", t.PipelineSpec)
				}
			}
		}
	}
	if pr.Spec.PipelineSpec != nil {
		walk("spec.pipelineSpec", pr.Spec.PipelineSpec)
	}
	return out
}

// authority is who the new PipelineRun is created for.
type authority struct {
	namespace   string
	pipelineRun string // the asking PipelineRun
	asker       string // its service account (of the CustomRun's task)
	runAs       string // what the new PipelineRun runs as
	fromConfig  bool   // runAs is the admin's serviceAccount
}

// authority reads the asking PipelineRun and checks the CustomRun is one of
// its children.
func (c *Creator) authority(ctx context.Context, a engine.AskingRun, pol Policy) (*authority, error) {
	pr, err := c.Client.TektonV1().PipelineRuns(a.Namespace).Get(ctx, a.PipelineRun, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, engine.Errorf(engine.ReasonEventHandlerFailed, "create-pipelinerun refused: PipelineRun %s/%s, which runs CustomRun %s, does not exist", a.Namespace, a.PipelineRun, a.CustomRun)
	case apierrors.IsForbidden(err):
		return nil, &engine.Error{Reason: engine.ReasonEventHandlerFailed, Message: fmt.Sprintf("create-pipelinerun refused: the controller may not read PipelineRun %s/%s to learn its service account (its ClusterRole needs get on pipelineruns.tekton.dev, config/201-clusterrole.yaml): %v", a.Namespace, a.PipelineRun, err), Err: err}
	case err != nil:
		return nil, &engine.Error{Reason: engine.ReasonEventHandlerFailed, Message: fmt.Sprintf("reading PipelineRun %s/%s: %v", a.Namespace, a.PipelineRun, err), Transient: true, Err: err}
	}
	if a.PipelineRunUID != "" && string(pr.UID) != a.PipelineRunUID {
		return nil, engine.Errorf(engine.ReasonEventHandlerFailed, "create-pipelinerun refused: PipelineRun %s/%s is not the one that owns CustomRun %s (uid %s, the owner's is %s)", a.Namespace, a.PipelineRun, a.CustomRun, pr.UID, a.PipelineRunUID)
	}
	if !listsChild(pr, a.CustomRun) {
		if !pr.IsDone() {
			// Tekton records a child in the PipelineRun's status just after
			// creating it: wait for that.
			return nil, &engine.Error{Reason: engine.ReasonEventHandlerFailed, Transient: true,
				Message: fmt.Sprintf("waiting for PipelineRun %s/%s to list CustomRun %s among its children", a.Namespace, a.PipelineRun, a.CustomRun)}
		}
		return nil, engine.Errorf(engine.ReasonEventHandlerFailed, "create-pipelinerun refused: PipelineRun %s/%s does not list CustomRun %s among its children (status.childReferences): only a CustomRun that a PipelineRun runs may act with its authority", a.Namespace, a.PipelineRun, a.CustomRun)
	}
	au := &authority{namespace: a.Namespace, pipelineRun: pr.Name, asker: serviceAccountOf(pr, a.PipelineTask)}
	au.runAs = au.asker
	if pol.ServiceAccount != "" {
		au.runAs, au.fromConfig = pol.ServiceAccount, true
	}
	return au, nil
}

func listsChild(pr *v1.PipelineRun, name string) bool {
	for _, c := range pr.Status.ChildReferences {
		if c.Name == name && (c.Kind == "" || c.Kind == "CustomRun" || c.Kind == "Run") {
			return true
		}
	}
	return false
}

// serviceAccountOf is the service account a pipeline task of pr runs as.
func serviceAccountOf(pr *v1.PipelineRun, task string) string {
	if task != "" {
		for _, s := range pr.Spec.TaskRunSpecs {
			if s.PipelineTaskName == task && s.ServiceAccountName != "" {
				return s.ServiceAccountName
			}
		}
	}
	if sa := pr.Spec.TaskRunTemplate.ServiceAccountName; sa != "" {
		return sa
	}
	return DefaultServiceAccount
}

// apply makes pr run as au.runAs, refusing a template that names another
// service account.
func (au *authority) apply(pr *v1.PipelineRun) error {
	why := fmt.Sprintf("the service account of the asking PipelineRun %s", au.pipelineRun)
	if au.fromConfig {
		why = fmt.Sprintf("set by the admin in config.yaml trigger.%s.serviceAccount", PolicyKey)
	}
	refuse := func(field, sa string) error {
		return engine.Errorf(engine.ReasonInvalidAppConfig, "create-pipelinerun refused: the template asks to run as service account %q (%s), but the controller creates PipelineRuns only as %q (%s): remove %s from the template, it is filled in", sa, field, au.runAs, why, field)
	}
	if sa := pr.Spec.TaskRunTemplate.ServiceAccountName; sa != "" && sa != au.runAs {
		return refuse("spec.taskRunTemplate.serviceAccountName", sa)
	}
	for i, s := range pr.Spec.TaskRunSpecs {
		if s.ServiceAccountName != "" && s.ServiceAccountName != au.runAs {
			return refuse(fmt.Sprintf("spec.taskRunSpecs[%d].serviceAccountName", i), s.ServiceAccountName)
		}
	}
	pr.Spec.TaskRunTemplate.ServiceAccountName = au.runAs
	return nil
}

// mayCreate asks the API server whether the asking service account may
// create PipelineRuns in the namespace.
func (c *Creator) mayCreate(ctx context.Context, au *authority) error {
	if c.Kube == nil {
		return engine.Errorf(engine.ReasonInvalidConfig, "create-pipelinerun refused: the controller has no Kubernetes client to check the asker's permissions")
	}
	user := fmt.Sprintf("system:serviceaccount:%s:%s", au.namespace, au.asker)
	sar := &authv1.SubjectAccessReview{Spec: authv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + au.namespace, "system:authenticated"},
		ResourceAttributes: &authv1.ResourceAttributes{
			Namespace: au.namespace, Verb: "create", Group: "tekton.dev", Resource: "pipelineruns",
		},
	}}
	res, err := c.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	switch {
	case apierrors.IsForbidden(err):
		return &engine.Error{Reason: engine.ReasonEventHandlerFailed, Message: fmt.Sprintf("create-pipelinerun refused: the controller may not ask whether %s may create PipelineRuns (its ClusterRole needs create on subjectaccessreviews.authorization.k8s.io, config/201-clusterrole.yaml): %v", user, err), Err: err}
	case err != nil:
		return &engine.Error{Reason: engine.ReasonEventHandlerFailed, Message: fmt.Sprintf("checking whether %s may create PipelineRuns: %v", user, err), Transient: true, Err: err}
	}
	if !res.Status.Allowed || res.Status.Denied {
		detail := ""
		if r := strings.TrimSpace(res.Status.Reason + " " + res.Status.EvaluationError); r != "" {
			detail = " (" + r + ")"
		}
		return engine.Errorf(engine.ReasonEventHandlerFailed, "create-pipelinerun refused: service account %q of the asking PipelineRun %s may not create PipelineRuns in namespace %s%s, so the controller does not create one for it. Grant it create on pipelineruns.tekton.dev in %s (a Role and RoleBinding), or run the pipeline as a service account that has it", au.asker, au.pipelineRun, au.namespace, detail, au.namespace)
	}
	return nil
}
