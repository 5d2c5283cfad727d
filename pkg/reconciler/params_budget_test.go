package reconciler

import (
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
)

func budgetRun(prms ...v1beta1.Param) *v1beta1.CustomRun {
	return &v1beta1.CustomRun{Spec: v1beta1.CustomRunSpec{Params: prms}}
}

func strParam(name, v string) v1beta1.Param {
	return v1beta1.Param{Name: name, Value: *v1beta1.NewStructuredValues(v)}
}

func arrParam(name string, v ...string) v1beta1.Param {
	return v1beta1.Param{Name: name, Value: *v1beta1.NewStructuredValues(v[0], v[1:]...)}
}

func TestParamsBudgets(t *testing.T) {
	b := config.DefaultBudgets()
	b.ValueBytes, b.AppConfigBytes = 8, 20
	check := func(prms ...v1beta1.Param) error {
		t.Helper()
		p, err := parseParams(budgetRun(append([]v1beta1.Param{strParam(ParamID, "x")}, prms...)...))
		if err != nil {
			t.Fatal(err)
		}
		return p.checkBudgets(b)
	}
	wantErr := func(err error, reason, msg, secret string) {
		t.Helper()
		if err == nil || engine.ReasonOf(err, "") != reason || !strings.Contains(err.Error(), msg) {
			t.Fatalf("got %v, want %s with %q", err, reason, msg)
		}
		if secret != "" && strings.Contains(err.Error(), secret) {
			t.Fatalf("%q echoes the value", err)
		}
	}
	// at the budget
	if err := check(strParam(ParamOp, "set"), arrParam(ParamSet, "a=12345678", "b=1"), arrParam(ParamSetYAML, "c=[1, 2]")); err != nil {
		t.Fatal(err)
	}
	if err := check(strParam(ParamOp, "init"), strParam(ParamAppConfig, strings.Repeat("#", 20))); err != nil {
		t.Fatal(err)
	}
	// one byte over
	wantErr(check(strParam(ParamOp, "set"), arrParam(ParamSet, "a=1", "state.b=SECRET123")),
		engine.ReasonInvalidParams, `param "set" item 1 (state.b): the value is 9 bytes, over the budget of 8 bytes (budgets.valueBytes)`, "SECRET123")
	wantErr(check(strParam(ParamOp, "set"), arrParam(ParamSetYAML, "m={k: SECRET}")),
		engine.ReasonInvalidParams, `param "set-yaml" item 0 (m): the value is 11 bytes, over the budget of 8 bytes`, "SECRET")
	wantErr(check(strParam(ParamOp, "init"), strParam(ParamAppConfig, strings.Repeat("#", 21))),
		engine.ReasonInvalidAppConfig, `param "app-config" is 21 bytes, over the budget of 20 bytes (budgets.appConfigBytes)`, "")
}
