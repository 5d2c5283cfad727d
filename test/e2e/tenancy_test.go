package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"knative.dev/pkg/apis"
)

// tenancyApp is team-a's app config: shared with one namespace for reading
// and one for writing state; an event handler that a planted handler could
// replace.
func tenancyApp(reader, writer string) string {
	return fmt.Sprintf(`
share:
  - {namespace: %s, access: read}
  - {namespace: %s, access: write}
cicd-contexts:
  stage:
    channel: team-a
    pipelines:
      build:
        event-handlers:
          deploy:
            set-values:
              mark: {set: [{from: "owner", to: "state.deployedBy"}]}
`, reader, writer)
}

// opRun is one CustomRun of the op with the given params.
func opRun(name, op, id string, params ...v1beta1.Param) *v1beta1.CustomRun {
	return customRun(name, "tenancy", time.Minute, append([]v1beta1.Param{strParam("op", op), strParam("id", id)}, params...)...)
}

// outcome runs cr in ns and returns its reason and message.
func outcome(t *testing.T, ns string, cr *v1beta1.CustomRun) (*v1beta1.CustomRun, string, string) {
	t.Helper()
	done := runOne(t, ns, cr, time.Minute)
	c := done.Status.GetCondition(apis.ConditionSucceeded)
	return done, c.Reason, c.Message
}

func resultOf(cr *v1beta1.CustomRun, name string) string {
	for _, r := range cr.Status.Results {
		if r.Name == name {
			return r.Value
		}
	}
	return ""
}

// TestContextsBelongToTheirNamespace: rule 1 and 2 of docs/security.md from
// the outside. team-b cannot read, write, re-init or run the handlers of
// team-a's context, cannot tell it from a missing one, and team-a's context
// stays byte-identical; a namespace the owner shares with reads (and, with
// write access, sets state) but never changes configuration.
func TestContextsBelongToTheirNamespace(t *testing.T) {
	a, b := namespace(t, "team-a"), namespace(t, "team-b")
	r, w := namespace(t, "team-r"), namespace(t, "team-w")
	if _, reason, msg := outcome(t, a, opRun("init", "init", "app", strParam("app-config", tenancyApp(r, w)),
		arrParam("set", "state.version=1.0"))); reason != "Succeeded" {
		t.Fatalf("init in %s: %s: %s", a, reason, msg)
	}
	owned := a + "/app"
	before := cliGet(t, a, "app", "$")
	if !strings.Contains(before, `"version": "1.0"`) {
		t.Fatalf("the owner's context as the CLI reads it: %s", before)
	}

	// Attacks from team-b: each refused.
	attacks := []struct {
		name, reason string
		cr           *v1beta1.CustomRun
	}{
		{"read", "ContextNotFound", opRun("read", "get", owned, arrParam("get", "v=state.version"))},
		{"write state", "ContextNotFound", opRun("write", "set", owned, arrParam("set", "state.version=pwned"))},
		{"rewrite a handler", "InvalidParams", opRun("handler", "set", owned,
			arrParam("set-yaml", `pipelines.build.event-handlers.deploy={"set-values": {"x": {"set": [{"from": "pwned", "to": "state.version"}]}}}`))},
		{"plant a macro", "InvalidParams", opRun("macro", "set", owned, arrParam("set", "jinja2Macros.all={{ secretData }}"))},
		{"re-init", "InvalidParams", opRun("reinit", "init", owned, strParam("app-config", "cicd-contexts: {stage: {}}"))},
		{"run its handlers", "InvalidParams", opRun("handle", "handle-event", owned, strParam("event", "build=deploy"))},
		{"generate", "InvalidParams", opRun("generate", "generate", owned, strParam("generator", "pipelines.build"))},
	}
	for _, at := range attacks {
		done, reason, msg := outcome(t, b, at.cr)
		if reason != at.reason {
			t.Errorf("team-b %s: %s: %s (want %s)", at.name, reason, msg, at.reason)
		}
		if strings.Contains(msg, "1.0") || resultOf(done, "v") != "" {
			t.Errorf("team-b %s learned something: %q %v", at.name, msg, done.Status.Results)
		}
	}
	// A hidden context reads exactly like a missing one.
	_, _, hidden := outcome(t, b, opRun("hidden", "get", owned, arrParam("get", "v=state.version")))
	_, _, missing := outcome(t, b, opRun("missing", "get", a+"/no-such-context", arrParam("get", "v=state.version")))
	if strings.Replace(hidden, `"app"`, `"X"`, 1) != strings.Replace(missing, `"no-such-context"`, `"X"`, 1) {
		t.Errorf("a hidden context and a missing one read differently:\n%s\n%s", hidden, missing)
	}
	// The same id in team-b is team-b's own context.
	if _, reason, msg := outcome(t, b, opRun("own", "init", "app", strParam("app-config", "cicd-contexts: {stage: {channel: team-b}}"),
		arrParam("set", "state.version=2.0"))); reason != "Succeeded" {
		t.Fatalf("team-b's own init: %s: %s", reason, msg)
	}
	if got := cliGet(t, b, "app", "state.version"); got != "2.0" {
		t.Fatalf("team-b's context: %q", got)
	}
	if after := cliGet(t, a, "app", "$"); after != before {
		t.Fatalf("team-a's context changed under team-b's attacks:\nbefore %s\nafter  %s", before, after)
	}

	// Shared namespaces: read; write state only.
	done, reason, msg := outcome(t, r, opRun("read", "get", owned, arrParam("get", "v=state.version")))
	if reason != "Succeeded" || resultOf(done, "v") != "1.0" {
		t.Fatalf("the read grant: %s: %s %v", reason, msg, done.Status.Results)
	}
	if _, reason, msg := outcome(t, r, opRun("write", "set", owned, arrParam("set", "state.version=r"))); reason != "InvalidParams" || !strings.Contains(msg, "reading only") {
		t.Errorf("the read grant wrote: %s: %s", reason, msg)
	}
	if _, reason, msg := outcome(t, w, opRun("write", "set", owned, arrParam("set", "state.fromW=w"))); reason != "Succeeded" {
		t.Fatalf("the write grant: %s: %s", reason, msg)
	}
	for _, cr := range []*v1beta1.CustomRun{
		opRun("channel", "set", owned, arrParam("set", "channel=w")),
		opRun("handler", "set", owned, arrParam("set-yaml", `pipelines.build={"event-handlers": {}}`)),
		opRun("handle", "handle-event", owned, strParam("event", "build=deploy")),
	} {
		if _, reason, msg := outcome(t, w, cr); reason != "InvalidParams" {
			t.Errorf("the write grant %s: %s: %s", cr.Name, reason, msg)
		}
	}
	if got := cliGet(t, a, "app", "state.fromW"); got != "w" {
		t.Fatalf("the write grant's state: %q", got)
	}

	// Configuration is not data, for the owner's CustomRuns too.
	for i, path := range []string{"pipelines.build.event-handlers.deploy=x", "jinja2Macros.all=x", "share=[]", "variables.v=x"} {
		if _, reason, msg := outcome(t, a, opRun(fmt.Sprintf("cfg-%d", i), "set", "app", arrParam("set", path))); reason != "InvalidParams" || !strings.Contains(msg, "configuration") {
			t.Errorf("owner set %s: %s: %s", path, reason, msg)
		}
	}
	// Positive control: the comparison above would notice a change.
	if _, reason, msg := outcome(t, a, opRun("owner-set", "set", "app", arrParam("set", "state.version=1.1"))); reason != "Succeeded" {
		t.Fatalf("owner set: %s: %s", reason, msg)
	}
	if cliGet(t, a, "app", "$") == before {
		t.Fatal("the owner's own write did not change the snapshot: the byte comparison proves nothing")
	}
}

// TestMigrateContextsOfThePreviousVersion: a context stored before contexts
// belonged to a namespace is reachable after `cicdstatemgr migrate`.
func TestMigrateContextsOfThePreviousVersion(t *testing.T) {
	ns := namespace(t, "migrated")
	id := fmt.Sprintf("legacy-%d", time.Now().UnixNano())
	rdb := stackRedis()
	defer rdb.Close()
	ctx := context.Background()
	// The previous version's layout: <prefix>:ctx:<id>, a hash of JSON fields.
	if err := rdb.HSet(ctx, "cicdstatemgr:ctx:"+id, "order", `{"v":1,"keys":["channel","state"],"state":["v"]}`,
		"t:channel", `"old"`, "s:v", `"from-the-old-version"`).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Expire(ctx, "cicdstatemgr:ctx:"+id, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	get := func(name string) (string, string) {
		done, reason, _ := outcome(t, ns, opRun(name, "get", id, arrParam("get", "v=state.v")))
		return reason, resultOf(done, "v")
	}
	if reason, _ := get("before"); reason != "ContextNotFound" {
		t.Fatalf("before the migration: %s", reason)
	}
	if stackIsCluster() {
		// the former layout predates Cluster support: migrate refuses clearly
		// and leaves the old context where it is
		_, stderr, err := cliRun(t, "migrate", "--namespace", ns, "--id", id)
		if err == nil || !strings.Contains(stderr, "migrate is not supported on a Redis Cluster") {
			t.Fatalf("migrate on a Redis Cluster: %v\n%s", err, stderr)
		}
		if n := rdb.Exists(ctx, "cicdstatemgr:ctx:"+id).Val(); n != 1 {
			t.Fatal("the refused migration removed the old key")
		}
		return
	}
	if out := cli(t, "migrate", "--namespace", ns, "--id", id); out != "moved "+id {
		t.Fatalf("migrate printed %q", out)
	}
	if reason, v := get("after"); reason != "Succeeded" || v != "from-the-old-version" {
		t.Fatalf("after the migration: %s %q", reason, v)
	}
	if ttl := rdb.TTL(ctx, fmt.Sprintf("cicdstatemgr:{%s/%s}:ctx", ns, id)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("the TTL was not kept: %v", ttl)
	}
	if n := rdb.Exists(ctx, "cicdstatemgr:ctx:"+id).Val(); n != 0 {
		t.Fatal("the old key is still there")
	}
}
