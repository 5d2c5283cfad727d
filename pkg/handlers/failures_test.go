package handlers_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
)

// app is an app config with one pipeline p whose events are given as YAML
// (indented under event-handlers), over the basics base (macros: random()
// for the body templates; their prefix eats leading whitespace).
func app(events string) string {
	return "bases: [base1.yaml]\ncicd-contexts:\n  stage:\n    channel: stage\n    pipelines:\n      p:\n        event-handlers:\n" + indent(events, "          ")
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func status(code int, body string) func(int, http.ResponseWriter, *http.Request) bool {
	return func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(code)
		w.Write([]byte(body))
		return true
	}
}

func TestTemplateErrorFails(t *testing.T) {
	e := newEnv(t, nil)
	e.init(app(`
ev:
  notify:
    message: "{{ missing.attr }}"
`))
	_, err := e.handle("p=ev")
	ee := wantReason(t, err, engine.ReasonTemplateError)
	if !strings.Contains(ee.Message, `notify handler "default" of p=ev: message:`) {
		t.Errorf("message does not name the handler: %s", ee.Message)
	}
	wantRequests(t, e.ep.take(), 0)
}

func TestClientErrorFailsWithoutRetry(t *testing.T) {
	e := newEnv(t, nil)
	e.init("")
	e.ep.setReply(status(http.StatusNotFound, `{"error":"no such channel","token":"FAKE_TOKEN"}`))
	_, err := e.handle("build=testEvent")
	ee := wantReason(t, err, engine.ReasonEventHandlerFailed)
	wantRequests(t, e.ep.take(), 1)
	host := strings.TrimPrefix(e.ep.URL, "http://")
	for _, want := range []string{`notify handler "default" of build=testEvent`, host, "404", "no such channel", "[REDACTED]"} {
		if !strings.Contains(ee.Message, want) {
			t.Errorf("message %q lacks %q", ee.Message, want)
		}
	}
	if strings.Contains(ee.Message, "FAKE_TOKEN") || strings.Contains(ee.Message, "/post") {
		t.Errorf("message leaks a secret or the URL path: %s", ee.Message)
	}
	if ee.Transient {
		t.Errorf("a 4xx is not transient")
	}
	if e.get("state.lastPostedDataRandomId") != nil {
		t.Errorf("a failed op changed the document")
	}
}

func TestServerErrorRetriedThenSucceeds(t *testing.T) {
	e := newEnv(t, nil)
	e.init("")
	e.ep.setReply(func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n == 0 {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	})
	handled := e.mustHandle("build=testEvent")
	wantEq(t, "handled", handled, `[{"type":"notify","name":"default","status":"sent","code":200}]`)
	reqs := e.ep.take()
	wantRequests(t, reqs, 2)
	if reqs[0].Body != reqs[1].Body {
		t.Errorf("the retry sent another body")
	}
	if e.get("state.lastPostedDataRandomId") == nil {
		t.Errorf("the successful reply was not captured")
	}
}

func TestServerErrorAfterRetriesIsTransient(t *testing.T) {
	e := newEnv(t, nil)
	e.init("")
	e.ep.setReply(status(http.StatusServiceUnavailable, "down"))
	_, err := e.handle("build=testEvent")
	ee := wantReason(t, err, engine.ReasonEventHandlerFailed)
	wantRequests(t, e.ep.take(), 3)
	if !ee.Transient || !strings.Contains(ee.Message, "503") || !strings.Contains(ee.Message, "3 attempts") {
		t.Errorf("want a transient error naming 503 and 3 attempts: %+v", ee)
	}
}

func TestConnectionRefusedFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	e := newEnv(t, func(c string) string {
		return strings.Replace(c, "url: http://127.0.0.1", "url: http://"+dead+"/x#", 2)
	})
	if !strings.HasPrefix(e.cfg.StringAt("slack.url"), "http://"+dead) {
		t.Fatalf("slack.url not rewritten: %s", e.cfg.StringAt("slack.url"))
	}
	e.init("")
	start := time.Now()
	_, err = e.handle("build=testEvent")
	ee := wantReason(t, err, engine.ReasonEventHandlerFailed)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to give up", d)
	}
	if !strings.Contains(ee.Message, dead) || !strings.Contains(ee.Message, "cannot connect") || !ee.Transient {
		t.Errorf("message %q (transient %v)", ee.Message, ee.Transient)
	}
}

func TestNonJSONReplyCapturedAsString(t *testing.T) {
	// Without the basics' global notify rules: `{% if body.data %}` on a text
	// body is a render error in pkg/tmpl (jinja2 would give Undefined).
	e := newEnv(t, func(c string) string {
		return strings.Replace(c, "auto-capture-response-data:", "unused-capture-rules:", 1)
	})
	e.init(app(`
ev:
  notify:
    message: hello
    capture-response-data:
      - from: "{{ body }}"
        to: state.reply
`))
	e.ep.setReply(func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok, not JSON \xff"))
		return true
	})
	handled := e.mustHandle("p=ev")
	wantEq(t, "handled", handled, `[{"type":"notify","name":"default","status":"sent","code":200}]`)
	wantEq(t, "captured", e.get("state.reply"), "ok, not JSON \uFFFD")
}

func TestOptionalBlockFailureContinues(t *testing.T) {
	e := newEnv(t, nil)
	e.init(app(`
ev:
  notify:
    first:
      message: one
      optional: true
    second:
      message: two
  set-values:
    set:
      - from: done
        to: state.after
`))
	e.ep.setReply(func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n == 0 {
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		return false
	})
	handled := e.mustHandle("p=ev")
	host := strings.TrimPrefix(e.ep.URL, "http://")
	wantEq(t, "handled", handled, `[{"type":"notify","name":"first","status":"failed","code":403,"error":"notify handler \"first\" of p=ev: POST to host `+
		host+` got HTTP 403 Forbidden"},{"type":"notify","name":"second","status":"sent","code":200},{"type":"set-values","name":"default","status":"applied"}]`)
	wantEq(t, "state.after", e.get("state.after"), "done")
	wantRequests(t, e.ep.take(), 2)
}

func TestOptionalTemplateError(t *testing.T) {
	e := newEnv(t, nil)
	e.init(app(`
ev:
  notify:
    message: "{{ missing.attr }}"
    optional: true
`))
	handled := e.mustHandle("p=ev")
	if !strings.HasPrefix(handled, `[{"type":"notify","name":"default","status":"failed","error":"notify handler \"default\" of p=ev: message: template error:`) {
		t.Errorf("handled = %s", handled)
	}
	wantRequests(t, e.ep.take(), 0)
}

func TestUnknownPipelineAndEvent(t *testing.T) {
	e := newEnv(t, nil)
	e.init("")
	_, err := e.handle("nope=testEvent")
	ee := wantReason(t, err, engine.ReasonUnknownEvent)
	if !strings.Contains(ee.Message, `"nope"`) || !strings.Contains(ee.Message, "start, test, build, test2") {
		t.Errorf("message: %s", ee.Message)
	}
	_, err = e.handle("build=nope")
	ee = wantReason(t, err, engine.ReasonUnknownEvent)
	if !strings.Contains(ee.Message, `"nope"`) || !strings.Contains(ee.Message, "testEvent, testNotifyEvent, testRespondEvent") {
		t.Errorf("message: %s", ee.Message)
	}

	e2 := newEnv(t, nil)
	e2.init("cicd-contexts:\n  stage:\n    pipelines:\n      p: {deployTask: {x: 1}}\n")
	_, err = e2.handle("p=ev")
	ee = wantReason(t, err, engine.ReasonUnknownEvent)
	if !strings.Contains(ee.Message, "no event-handlers") {
		t.Errorf("message: %s", ee.Message)
	}
	wantRequests(t, e.ep.take(), 0)
}

func TestUnknownHandlerType(t *testing.T) {
	e := newEnv(t, nil)
	e.init(app(`
ev:
  bogus: {message: x}
`))
	_, err := e.handle("p=ev")
	ee := wantReason(t, err, engine.ReasonInvalidAppConfig)
	if !strings.Contains(ee.Message, `"bogus"`) || !strings.Contains(ee.Message, "notify") {
		t.Errorf("message: %s", ee.Message)
	}
}

func TestDisabledOnlyByBooleanFalse(t *testing.T) {
	e := newEnv(t, nil)
	e.init(app(`
ev:
  notify:
    message: hi
    enabled: "false"
  set-values:
    enabled: false
    set: [{from: x, to: state.x}]
`))
	handled := e.mustHandle("p=ev")
	wantEq(t, "handled", handled, `[{"type":"notify","name":"default","status":"sent","code":200},{"type":"set-values","name":"default","status":"disabled"}]`)
	if e.get("state.x") != nil {
		t.Errorf("a disabled set-values ran")
	}
	if !strings.Contains(e.logs.String(), "set-values enabled:False skipping....") {
		t.Errorf("log line missing")
	}
}

func TestMissingRequiredConfig(t *testing.T) {
	e := newEnv(t, func(c string) string { return strings.Replace(c, "  slack:\n", "  slackX:\n", 1) })
	e.init("")
	_, err := e.handle("build=testEvent")
	ee := wantReason(t, err, engine.ReasonEventHandlerFailed)
	if !strings.Contains(ee.Message, "slack.url") {
		t.Errorf("message: %s", ee.Message)
	}
	e.cfg.Secrets.Delete("slack")
	e.cfg.Data.Set("slack", e.cfg.Data.Keys()) // any non-map: no url
	_, err = e.handle("build=testRespondEvent", set("state.lastPostedHttpResponse", `{"url": "`+e.ep.URL+`/post"}`))
	// The endpoint is still trigger.url's host, so respond may post there,
	// but it is not the Slack host: no token needed, none sent.
	if err != nil {
		t.Fatalf("respond to the trigger host: %v", err)
	}
	reqs := e.ep.take()
	wantRequests(t, reqs, 1)
	if a := reqs[0].Header.Get("Authorization"); a != "" {
		t.Errorf("respond to a non-Slack host sent Authorization %q", a)
	}
	// and without trigger.url either, the endpoint is no allowed host
	e.cfg.Data.Delete("trigger")
	_, err = e.handle("build=testRespondEvent", set("state.lastPostedHttpResponse", `{"url": "`+e.ep.URL+`/post"}`))
	ee = wantReason(t, err, engine.ReasonEventHandlerFailed)
	if !strings.Contains(ee.Message, "is not in cicdstatemgr.http.allowedHosts") {
		t.Errorf("message: %s", ee.Message)
	}
	wantRequests(t, e.ep.take(), 0)
}

func TestIfConditions(t *testing.T) {
	e := newEnv(t, nil)
	e.init(app(`
ev:
  notify:
    blank:
      if: "{{ state.nothing }}"
      message: a
    broken:
      if: "{{ state.nothing.deeper }}"
      message: b
    spaces:
      if: "{{ state.nothing }} "
      message: c
  set-values:
    stripped:
      if: "{{ state.nothing }} "
      set: [{from: x, to: state.x}]
    empty:
      set:
        - {from: "  ", to: state.empty}
        - {from: " v ", to: " state.v "}
`))
	handled := e.mustHandle("p=ev")
	wantEq(t, "handled", handled, `[{"type":"notify","name":"blank","status":"skipped"},{"type":"notify","name":"broken","status":"skipped"},`+
		`{"type":"notify","name":"spaces","status":"sent","code":200},{"type":"set-values","name":"stripped","status":"skipped"},`+
		`{"type":"set-values","name":"empty","status":"applied"}]`)
	wantRequests(t, e.ep.take(), 1)
	if e.get("state.x") != nil || e.get("state.empty") != nil {
		t.Errorf("skipped or empty values were set")
	}
	wantEq(t, "state.v", e.get("state.v"), "v")
}

// TestHostBusyIsATransientBudgetFailure: a handler call that finds its host
// at the HostLimiter's limit fails transiently, naming the callsPerHost
// budget (counted by the controller), and sends nothing.
func TestHostBusyIsATransientBudgetFailure(t *testing.T) {
	e := newEnv(t, nil)
	e.init("")
	e.ep.take()
	release := make(chan struct{})
	arrived := make(chan struct{})
	e.ep.setReply(func(n int, w http.ResponseWriter, _ *http.Request) bool {
		close(arrived)
		<-release
		return false
	})
	e.runner.HTTP.Hosts = &httpclient.HostLimiter{Max: 1}
	held := make(chan error, 1)
	go func() {
		_, err := e.runner.HTTP.Do(context.Background(), httpclient.Request{URL: e.ep.URL + "/hold"})
		held <- err
	}()
	<-arrived
	_, err := e.handle("build=testEvent")
	ee := wantReason(t, err, engine.ReasonEventHandlerFailed)
	if !ee.Transient || ee.Budget != engine.BudgetCallsPerHost || !errors.Is(err, httpclient.ErrHostBusy) {
		t.Errorf("want a transient callsPerHost failure: %+v", ee)
	}
	close(release)
	<-held
	if got := e.ep.take(); len(got) != 1 || got[0].Path != "/hold" {
		t.Errorf("the busy host got requests beside the one holding it: %+v", got)
	}
}
