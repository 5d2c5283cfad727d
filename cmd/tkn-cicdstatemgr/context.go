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
// credentials. The CustomRun is deleted afterwards.
func getContext(ctx context.Context, c *clients, id, path string, out io.Writer) error {
	run := &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "cicdstatemgr-get-", Namespace: c.namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "tkn-cicdstatemgr"}},
		Spec: v1beta1.CustomRunSpec{
			CustomRef: &v1beta1.TaskRef{APIVersion: "cicdstatemgr.dev/v1alpha1", Kind: "CicdState"},
			Params: v1beta1.Params{
				{Name: "op", Value: *v1beta1.NewStructuredValues("get")},
				{Name: "id", Value: *v1beta1.NewStructuredValues(id)},
				{Name: "get", Value: *v1beta1.NewStructuredValues("value=" + path)},
			},
			Timeout: &metav1.Duration{Duration: time.Minute},
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
				if res.Name == "value" {
					fmt.Fprintln(out, res.Value)
					return nil
				}
			}
			return fmt.Errorf("the get CustomRun %s has no result value", r.Name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the get CustomRun %s did not finish within a minute (is the cicdstatemgr controller running?)", r.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
