package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
)

// getContext reads a cicd context through a get CustomRun in the namespace:
// the user needs only RBAC to create and read CustomRuns there (the
// controller reads the namespace's own contexts for it), never Redis
// credentials.
func getContext(ctx context.Context, c *clients, id, path string, out io.Writer) error {
	return runOp(ctx, c, "get", v1beta1.Params{
		{Name: "id", Value: *v1beta1.NewStructuredValues(id)},
		{Name: "get", Value: *v1beta1.NewStructuredValues("value=" + path)},
	}, "value", out)
}

// contextHistory reads the history of a cicd context (docs/history.md)
// through a history CustomRun in the namespace, with the same rights as
// getContext: a JSON array of entries, newest first.
func contextHistory(ctx context.Context, c *clients, id, path, limit string, out io.Writer) error {
	params := v1beta1.Params{{Name: "id", Value: *v1beta1.NewStructuredValues(id)}}
	if path != "" {
		params = append(params, v1beta1.Param{Name: "path", Value: *v1beta1.NewStructuredValues(path)})
	}
	if limit != "" {
		params = append(params, v1beta1.Param{Name: "limit", Value: *v1beta1.NewStructuredValues(limit)})
	}
	return runOp(ctx, c, "history", params, "history", out)
}

// runOp runs op as a CustomRun in the namespace, prints its result named
// result and deletes the CustomRun afterwards.
func runOp(ctx context.Context, c *clients, op string, params v1beta1.Params, result string, out io.Writer) error {
	run := &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "cicdstatemgr-" + op + "-", Namespace: c.namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "tkn-cicdstatemgr"}},
		Spec: v1beta1.CustomRunSpec{
			CustomRef: &v1beta1.TaskRef{APIVersion: "cicdstatemgr.dev/v1alpha1", Kind: "CicdState"},
			Params:    append(v1beta1.Params{{Name: "op", Value: *v1beta1.NewStructuredValues(op)}}, params...),
			Timeout:   &metav1.Duration{Duration: time.Minute},
		},
	}
	runs := c.tekton.TektonV1beta1().CustomRuns(c.namespace)
	created, err := runs.Create(ctx, run, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	defer runs.Delete(context.Background(), created.Name, metav1.DeleteOptions{})
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := runs.Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cond := r.Status.GetCondition(apis.ConditionSucceeded); cond != nil && !cond.IsUnknown() {
			if !cond.IsTrue() {
				return fmt.Errorf("%s: %s", cond.Reason, cond.Message)
			}
			for _, res := range r.Status.Results {
				if res.Name == result {
					fmt.Fprintln(out, res.Value)
					return nil
				}
			}
			return fmt.Errorf("the %s CustomRun %s has no result %s", op, r.Name, result)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s CustomRun %s did not finish within a minute (is the cicdstatemgr controller running?)", op, r.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
