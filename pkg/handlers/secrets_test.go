package handlers_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
)

// plantedApp is an app config whose macros (put in front of every
// template), handler args, respond url and state aim at the trigger
// headers' secretData: output it, encode it, make a filter fail on it.
const plantedApp = `
jinja2-macros:
  bomb: |
    {%- if secretData -%}{{ secretData.someSuperSecret|from_json }}{{ secretData.slack.token|to_base64|from_json }}{%- endif -%}
  steal: |
    {%- macro steal() -%}{%- if secretData -%}{{ secretData.someSuperSecret }}|{{ secretData.trigger.token|to_base64 }}|{{ secretData|tojson }}{%- endif -%}{%- endmacro -%}
  random: |
    {%- macro random() -%}42{%- endmacro -%}
cicd-contexts:
  stage:
    channel: c
    pipelines:
      build:
        event-handlers:
          leak:
            trigger-pipeline:
              name: build
              args:
                a: "{{ steal() }}"
                b: "{{ state.planted }}"
          leakError:
            trigger-pipeline:
              name: build
              args:
                a: "{{ secretData.someSuperSecret|from_json }}"
          leakFilter:
            notify:
              message: "{{ state.plantedJSON|from_json }}{{ 'x'|json_dumps:state.plantedOpt }}"
          leakRespond:
            respond:
              message: hi
              url: "http://127.0.0.1:1/{{ steal() }}"
`

// secretForms lists every secret of the configuration, plain and base64.
func secretForms(e *env) []string {
	var out []string
	for _, s := range e.cfg.SecretValues() {
		out = append(out, s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawStdEncoding.EncodeToString([]byte(s)))
	}
	return out
}

func noSecret(t *testing.T, forms []string, where, text string) {
	t.Helper()
	for _, f := range forms {
		if strings.Contains(text, f) {
			t.Errorf("%s holds the secret form %q:\n%s", where, f, text)
		}
	}
}

// TestPlantedTextCannotReachSecrets: macros, args and state values a
// pipeline author plants get no secret (plain or base64) into any error
// message, handled summary, request body or log line (debug level) of a
// controller run; the trigger still carries the admin's secret header.
func TestPlantedTextCannotReachSecrets(t *testing.T) {
	e := newEnv(t, adminOnlyHeaders)
	e.runner.DocumentInHeaders = false // as the controller runs it
	e.init(plantedApp,
		set("state.planted", "{{ secretData.someSuperSecret }}"),
		set("state.plantedJSON", "{ planted-value-xyz"),
		set("state.plantedOpt", "indent=planted-value-xyz"))
	forms := secretForms(e)
	if len(forms) < 9 {
		t.Fatalf("secrets: %q", forms)
	}
	var texts []string
	for i, ev := range []string{"leak", "leakError", "leakFilter", "leakRespond"} {
		doc, handled, err := e.run("build="+ev, fmt.Sprintf("run-uid-secrets-%d", i))
		texts = append(texts, handled, document.MustJSON(doc, document.JSONStyle{}))
		if err != nil {
			ee := engine.AsError(err, "")
			texts = append(texts, err.Error(), ee.Message)
			// filter errors name the problem, never the value
			noSecret(t, []string{"planted-value-xyz"}, ev+" error", err.Error())
		}
		if ev != "leak" && err == nil {
			t.Errorf("%s: no error", ev)
		}
		if ev == "leak" && err != nil {
			t.Errorf("leak: %v", err)
		}
		if ev == "leakRespond" && (err == nil || !strings.Contains(err.Error(), "is not in cicdstatemgr.http.allowedHosts")) {
			t.Errorf("leakRespond: %v", err)
		}
	}
	reqs := e.ep.take()
	wantRequests(t, reqs, 1)
	// positive control: the admin's header has the secret, so a leak would show
	if got := reqs[0].Header.Get("Test-Header-1"); got != "mySecretValue" {
		t.Fatalf("admin header: %q", got)
	}
	noSecret(t, forms, "the trigger body", reqs[0].Body)
	for _, s := range texts {
		noSecret(t, forms, "a result or error", s)
	}
	noSecret(t, forms, "the log", e.logs.String())
	if !strings.Contains(e.logs.String(), "event handler request") {
		t.Fatalf("the debug log was not captured:\n%s", e.logs.String())
	}

	// positive control: the same planted text rendered the unsafe way (the
	// block's context with secretData and the macros, as trigger.headers
	// once were) does give the secret away.
	ctx := e.doc()
	ctx.Set("secretData", document.CloneMap(e.cfg.Secrets))
	out, err := e.runner.Templates.Render("{{ steal() }}", ctx)
	if err == nil || !strings.Contains(err.Error(), "from_json") { // the planted bomb goes off
		t.Fatalf("unsafe render: %q %v", out, err)
	}
	ctx.Delete("jinja2Macros")
	out, err = e.runner.Templates.Render(`{{ secretData.someSuperSecret }}|{{ secretData.trigger.token|to_base64 }}`, ctx)
	if err != nil || !strings.Contains(out, "mySecretValue") || !strings.Contains(out, base64.StdEncoding.EncodeToString([]byte("3ecret1!"))) {
		t.Fatalf("unsafe render: %q %v", out, err)
	}
}
