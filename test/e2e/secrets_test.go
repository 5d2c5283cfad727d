package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// stackTriggerToken is trigger.token of the stack's secrets (hack/stack.sh).
const stackTriggerToken = "local-trigger-token"

// recorder is an HTTP server that records every request and answers 200
// with a JSON body.
type recorder struct {
	mu   sync.Mutex
	reqs []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, fmt.Sprintf("%s %s auth=%q key=%q %s", r.Method, r.URL.Path,
		r.Header.Get("Authorization"), r.Header.Get("x-cicdstatemgr-autotrigger-key"), b))
	rec.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok": true}`)
}

func (rec *recorder) take() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := rec.reqs
	rec.reqs = nil
	return out
}

// startAdminEndpoint serves the stack's slack.url and trigger.url
// (127.0.0.1:ECHO_PORT), the hosts the admin configured.
func startAdminEndpoint(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{}
	serveAdminHost(t, rec)
	return rec
}

// serveAdminHost serves h on the stack's admin host (127.0.0.1:ECHO_PORT,
// slack.url and trigger.url of its configuration) until the test ends.
func serveAdminHost(t *testing.T, h http.Handler) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+stackEnv["ECHO_PORT"])
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// leakApp plants text aimed at the trigger headers' secretData: macros
// (put in front of every template) and handler args that read, encode and
// break on the secrets, and a state value holding the same.
const leakApp = `
jinja2-macros:
  bomb: |
    {%- if secretData -%}{{ secretData.trigger.token|from_json }}{{ secretData.trigger.token|to_base64|from_json }}{%- endif -%}
  steal: |
    {%- macro steal() -%}{%- if secretData -%}{{ secretData.trigger.token }}|{{ secretData.trigger.token|to_base64 }}{%- endif -%}{%- endmacro -%}
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
                c: "{{ configData|json_dumps }}"
          leak-error:
            trigger-pipeline:
              name: build
              args:
                a: "{{ secretData.trigger.token|from_json }}"
`

// TestSecretsOutOfReachOfUserText: docs/security.md "Secrets are out of
// reach of user text". A CustomRun whose app config and state plant text
// aimed at the trigger headers' secretData gets no secret (plain or base64)
// into its status, results, Events, the trigger's body or the controller's
// log. The trigger still gets its admin header (positive control: the secret
// is there to be leaked).
func TestSecretsOutOfReachOfUserText(t *testing.T) {
	rec := startAdminEndpoint(t)
	ns := namespace(t, "secrets")
	logPath := filepath.Join(stackEnv["CLUSTER_DIR"], "logs", "cicdstatemgr-controller.log")
	logStart := fileSize(logPath)
	if _, reason, msg := outcome(t, ns, opRun("init", "init", "app", strParam("app-config", leakApp),
		arrParam("set", "state.planted={{ secretData.trigger.token }}{{ secretData|to_base64 }}"))); reason != "Succeeded" {
		t.Fatalf("init: %s: %s", reason, msg)
	}
	var runs []*v1beta1.CustomRun
	done, reason, msg := outcome(t, ns, opRun("leak", "handle-event", "app", strParam("event", "build=leak")))
	runs = append(runs, done)
	if reason != "Succeeded" {
		t.Fatalf("leak: %s: %s", reason, msg)
	}
	done, reason, msg = outcome(t, ns, opRun("leak-error", "handle-event", "app", strParam("event", "build=leak-error")))
	runs = append(runs, done)
	if reason == "Succeeded" {
		t.Fatalf("leak-error rendered: %s", msg)
	}
	posts := rec.take()
	if len(posts) != 1 {
		t.Fatalf("trigger posts: %d, want 1: %q", len(posts), posts)
	}
	// positive control: the admin's header carries the secret to trigger.url
	if !strings.Contains(posts[0], `key="`+stackTriggerToken+`"`) {
		t.Fatalf("the trigger got no admin header: %s", posts[0])
	}
	forms := []string{stackTriggerToken, base64.StdEncoding.EncodeToString([]byte(stackTriggerToken)),
		base64.RawStdEncoding.EncodeToString([]byte(stackTriggerToken))}
	body := posts[0][strings.Index(posts[0], "{"):]
	check := func(where, text string) {
		t.Helper()
		for _, f := range forms {
			if strings.Contains(text, f) {
				t.Errorf("%s holds the secret (%s): %s", where, f, text)
			}
		}
	}
	check("the trigger body", body)
	for _, cr := range runs {
		c := cr.Status.Conditions
		check("status of "+cr.Name, fmt.Sprintf("%+v", c))
		check("results of "+cr.Name, fmt.Sprintf("%+v", cr.Status.Results))
	}
	// the failure's event (a success has none), sent by the controller's
	// recorder in the background: wait for it
	var evs *corev1.EventList
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var err error
		if evs, err = kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		if len(evs.Items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event in %s for the failed leak-error", ns)
		}
	}
	for _, ev := range evs.Items {
		check("event "+ev.Reason, ev.Message)
	}
	check("the controller log", readFrom(logPath, logStart))
}

// TestRespondURLsLimitedToAllowedHosts: docs/security.md "Outbound HTTP goes
// only where the admin allows". A respond whose url names a host outside
// cicdstatemgr.http.allowedHosts (a loopback server the test starts) fails
// with EventHandlerFailed and the server receives nothing; a respond to the
// admin's Slack host is sent, with the bearer token.
func TestRespondURLsLimitedToAllowedHosts(t *testing.T) {
	admin := startAdminEndpoint(t)
	victim := &recorder{}
	srv := httptest.NewServer(victim)
	t.Cleanup(srv.Close)
	ns := namespace(t, "respond")
	app := fmt.Sprintf(`
cicd-contexts:
  stage:
    channel: c
    pipelines:
      build:
        event-handlers:
          internal:
            respond:
              message: hello
              url: %s/steal
          decimal:
            respond:
              message: hello
              url: http://2130706433:%s/steal
          allowed:
            respond:
              message: hello
              url: http://127.0.0.1:%s/respond
`, srv.URL, strings.TrimPrefix(srv.URL[strings.LastIndex(srv.URL, ":"):], ":"), stackEnv["ECHO_PORT"])
	if _, reason, msg := outcome(t, ns, opRun("init", "init", "app", strParam("app-config", app))); reason != "Succeeded" {
		t.Fatalf("init: %s: %s", reason, msg)
	}
	for _, ev := range []string{"internal", "decimal"} {
		_, reason, msg := outcome(t, ns, opRun(ev, "handle-event", "app", strParam("event", "build="+ev)))
		if reason != "EventHandlerFailed" || !strings.Contains(msg, "host ") {
			t.Errorf("%s: %s: %s", ev, reason, msg)
		}
		t.Logf("%s: %s", ev, msg)
	}
	if got := victim.take(); len(got) != 0 {
		t.Errorf("the server outside the allow-list got requests: %q", got)
	}
	if got := admin.take(); len(got) != 0 {
		t.Errorf("the admin endpoint got requests before the control: %q", got)
	}
	// positive control: the Slack host is allowed and gets the token
	if _, reason, msg := outcome(t, ns, opRun("allowed", "handle-event", "app", strParam("event", "build=allowed"))); reason != "Succeeded" {
		t.Fatalf("allowed: %s: %s\n%s", reason, msg, controllerLogTail())
	}
	got := admin.take()
	if len(got) != 1 || !strings.Contains(got[0], `auth="Bearer local-demo-token"`) {
		t.Fatalf("the allowed respond: %q", got)
	}
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func readFrom(path string, off int64) string {
	b, _ := os.ReadFile(path)
	if off > int64(len(b)) {
		return string(b)
	}
	return string(b[off:])
}
