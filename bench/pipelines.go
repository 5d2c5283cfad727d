package main

import (
	"context"
	"fmt"
	"log"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// pipelineSteps is the number of sequential tasks of both pipelines.
const pipelineSteps = 10

// pipelineResult is the PipelineRun durations of one kind.
type pipelineResult struct {
	kind   string
	lat    []time.Duration
	failed int
}

func pipelineTask(name, prev, apiVersion, kind string, params ...v1.Param) v1.PipelineTask {
	t := v1.PipelineTask{Name: name, TaskRef: &v1.TaskRef{APIVersion: apiVersion, Kind: v1.TaskKind(kind)}, Params: params}
	if prev != "" {
		t.RunAfter = []string{prev}
	}
	return t
}

func p1(name, value string) v1.Param {
	return v1.Param{Name: name, Value: v1.ParamValue{Type: v1.ParamTypeString, StringVal: value}}
}

func pArr(name string, values ...string) v1.Param {
	return v1.Param{Name: name, Value: v1.ParamValue{Type: v1.ParamTypeArray, ArrayVal: values}}
}

// oursPipeline: init, 8 sets, get: 10 sequential state ops on one context.
func oursPipeline() *v1.Pipeline {
	const api, kind = "cicdstatemgr.dev/v1alpha1", "CicdState"
	tasks := []v1.PipelineTask{pipelineTask("init", "", api, kind, p1("op", "init"), p1("id", "$(params.id)"), p1("app-config", appConfig))}
	prev := "init"
	for i := 1; i <= pipelineSteps-2; i++ {
		name := fmt.Sprintf("set-%d", i)
		tasks = append(tasks, pipelineTask(name, prev, api, kind, p1("op", "set"), p1("id", "$(params.id)"),
			pArr("set", fmt.Sprintf("state.items[]=%d", i))))
		prev = name
	}
	tasks = append(tasks, pipelineTask("read", prev, api, kind, p1("op", "get"), p1("id", "$(params.id)"),
		pArr("get", "items:csv=state.items")))
	return &v1.Pipeline{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-ours", Namespace: namespace},
		Spec: v1.PipelineSpec{
			Params:  v1.ParamSpecs{{Name: "id", Type: v1.ParamTypeString}},
			Tasks:   tasks,
			Results: []v1.PipelineResult{{Name: "items", Type: v1.ResultsTypeString, Value: *v1.NewStructuredValues("$(tasks.read.results.items)")}},
		},
	}
}

// basePipeline: 10 sequential baseline Copy tasks, each copying the previous result.
func basePipeline() *v1.Pipeline {
	const api, kind = "bench.cicdstatemgr.dev/v1alpha1", "Copy"
	var tasks []v1.PipelineTask
	prev, value := "", "$(params.id)"
	for i := 1; i <= pipelineSteps; i++ {
		name := fmt.Sprintf("copy-%d", i)
		tasks = append(tasks, pipelineTask(name, prev, api, kind, p1("value", value)))
		prev, value = name, fmt.Sprintf("$(tasks.%s.results.value)", name)
	}
	return &v1.Pipeline{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-baseline", Namespace: namespace},
		Spec: v1.PipelineSpec{
			Params:  v1.ParamSpecs{{Name: "id", Type: v1.ParamTypeString}},
			Tasks:   tasks,
			Results: []v1.PipelineResult{{Name: "value", Type: v1.ResultsTypeString, Value: *v1.NewStructuredValues(value)}},
		},
	}
}

// pipelines runs n PipelineRuns of each pipeline, one at a time, ours and the
// baseline's in turn; the duration is from Create to Succeeded seen by the
// informer.
func (c *cluster) pipelines(ctx context.Context, n int, rep *report) error {
	for _, p := range []*v1.Pipeline{oursPipeline(), basePipeline()} {
		_, err := c.tekton.TektonV1().Pipelines(namespace).Create(ctx, p, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			var old *v1.Pipeline
			if old, err = c.tekton.TektonV1().Pipelines(namespace).Get(ctx, p.Name, metav1.GetOptions{}); err == nil {
				p.ResourceVersion = old.ResourceVersion
				_, err = c.tekton.TektonV1().Pipelines(namespace).Update(ctx, p, metav1.UpdateOptions{})
			}
		}
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", p.Name, err)
		}
	}
	ours := &pipelineResult{kind: "ours"}
	base := &pipelineResult{kind: "baseline"}
	stamp := time.Now().UnixNano() % 1e9
	for i := 0; i < n; i++ {
		for _, k := range []struct {
			pipeline string
			res      *pipelineResult
		}{{"bench-ours", ours}, {"bench-baseline", base}} {
			name := fmt.Sprintf("%s-%d-%d", k.pipeline, stamp, i)
			pr := &v1.PipelineRun{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{labelPhase: "pipelines"}},
				Spec: v1.PipelineRunSpec{PipelineRef: &v1.PipelineRef{Name: k.pipeline},
					Params: v1.Params{p1("id", name)}},
			}
			ch := c.prs.expect(name)
			t0 := time.Now()
			if _, err := c.tekton.TektonV1().PipelineRuns(namespace).Create(ctx, pr, metav1.CreateOptions{}); err != nil {
				c.prs.forget(name)
				return fmt.Errorf("PipelineRun %s: %w", name, err)
			}
			select {
			case d := <-ch:
				k.res.lat = append(k.res.lat, d.at.Sub(t0))
				if !d.ok {
					k.res.failed++
					log.Printf("PipelineRun %s failed: %s", name, d.reason)
				}
			case <-time.After(3 * time.Minute):
				c.prs.forget(name)
				return fmt.Errorf("PipelineRun %s not done after 3m", name)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	rep.pipelines = []*pipelineResult{ours, base}
	so, sb := summarize(ours.lat), summarize(base.lat)
	log.Printf("pipelines of %d sequential ops: ours p50 %s, baseline p50 %s", pipelineSteps, ms(so.p50), ms(sb.p50))
	if err := c.deleteAll(ctx, "pipelines"); err != nil {
		return err
	}
	err := c.tekton.TektonV1beta1().CustomRuns(namespace).DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun"})
	return err
}
