package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
)

// withBudgets appends a budgets block to the env's config.yaml.
func (e *env) withBudgets(block string) {
	e.t.Helper()
	p := filepath.Join(e.dir, "config.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatal(err)
	}
	base, _, _ := strings.Cut(string(b), "  budgets:")
	write(e.t, e.dir, "config.yaml", base+"  budgets: "+block+"\n")
}

func (e *env) wantFail(reason string, contains string, args ...string) {
	e.t.Helper()
	code, out, errs := e.run(args...)
	if code == 0 || out != "" || !strings.HasPrefix(errs, "cicdstatemgr: "+reason+": ") || !strings.Contains(errs, contains) {
		e.t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %s with %q", args, code, out, errs, reason, contains)
	}
}

func TestCLIBudgets(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t, srv.Addr)
	e.mustRun("--init-new", "c1", "--init-app-config-file", "app.yaml")
	before := e.mustRun("--id", "c1", "--get", "$")
	unchanged := func(what string) {
		t.Helper()
		if after := e.mustRun("--id", "c1", "--get", "$"); after != before {
			t.Fatalf("%s: the context changed:\n%s\n%s", what, before, after)
		}
	}

	// valueBytes
	e.withBudgets("{valueBytes: 16}")
	secret := strings.Repeat("S", 17)
	e.wantFail("InvalidParams", "set state.v: the value is 17 bytes, over the budget of 16 bytes (budgets.valueBytes)", "--id", "c1", "--set", "state.v="+secret)
	unchanged("value over")
	if _, _, errs := e.run("--id", "c1", "--set", "state.v="+secret); strings.Contains(errs, secret) {
		t.Fatal("the error echoes the value")
	}
	write(t, e.dir, "v.yaml", `{"k": "123456789"}`) // compact JSON {"k":"123456789"}: 17 bytes
	e.wantFail("InvalidParams", "set state.m: the value is 17 bytes", "--id", "c1", "--set", "state.m=file://v.yaml")
	unchanged("file value over")
	e.wantFail("InvalidParams", "budgets.valueBytes", "--init-new", "c2", "--init-app-config-file", "app.yaml", "--set", "state.v="+secret)
	if code, _, _ := e.run("--id", "c2", "--get", "$"); code == 0 {
		t.Fatal("init with a value over the budget wrote a context")
	}
	e.mustRun("--id", "c1", "--set", "state.v="+secret[:16])
	before = e.mustRun("--id", "c1", "--get", "$")

	// appConfigBytes
	app, _ := os.ReadFile(filepath.Join(e.dir, "app.yaml"))
	e.withBudgets(fmt.Sprintf("{appConfigBytes: %d}", len(app)-1))
	e.wantFail("InvalidAppConfig", fmt.Sprintf("app config is %d bytes, over the budget of %d bytes (budgets.appConfigBytes)", len(app), len(app)-1),
		"--init-new", "c1", "--init-app-config-file", "app.yaml")
	unchanged("app config over")
	e.withBudgets(fmt.Sprintf("{appConfigBytes: %d}", len(app)))
	e.mustRun("--init-new", "c3", "--init-app-config-file", "app.yaml")

	// contextBytes
	e.withBudgets("{contextBytes: 600}")
	e.wantFail("ContextTooLarge", "over the budget of 600 bytes (budgets.contextBytes)", "--id", "c1", "--set", "state.big="+strings.Repeat("b", 600))
	unchanged("context over")
	e.mustRun("--id", "c1", "--set", "state.small=s")

	// opOutput: the renders of one op together stay within contextBytes
	e.withBudgets("{contextBytes: 20000}")
	var vars strings.Builder
	vars.WriteString("cicd-contexts:\n  stage: {}\nvariables:\n")
	for i := range 50 {
		fmt.Fprintf(&vars, "  v%d: '{{ \"x\"|ljust:4000 }}'\n", i)
	}
	write(t, e.dir, "vars.yaml", vars.String())
	e.wantFail("TemplateError", "render budget exceeded (opOutput: 20000)", "--init-new", "c4", "--init-app-config-file", "vars.yaml")
	if code, _, _ := e.run("--id", "c4", "--get", "$"); code == 0 {
		t.Fatal("an init over the op's output budget wrote a context")
	}

	// nothing stored deeper than it can be read back
	e.withBudgets("{}")
	before = e.mustRun("--id", "c1", "--get", "$")
	e.wantFail("InvalidParams", "nested deeper than 1000 levels", "--id", "c1", "--set", "state."+strings.Repeat("a.", 1100)+"b=v")
	unchanged("too deep")
	e.mustRun("--id", "c1", "--set", "state."+strings.Repeat("a.", 900)+"b=v")

	// malformed budgets
	e.withBudgets("{contextBytes: -1}")
	e.wantFail("InvalidConfig", "budgets.contextBytes must be a positive integer, not -1", "--id", "c1", "--get", "state")
}
