package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/slack"
)

// slackSigningSecret is what hack/stack.sh puts in cicdstatemgr-secrets.
const slackSigningSecret = "local-signing-secret"

// fakeSlack stands in for chat.postMessage on the ECHO_PORT the stack's
// config points at: it records posts and answers like Slack does.
type fakeSlack struct {
	mu    sync.Mutex
	posts []string
}

func startFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+stackEnv["ECHO_PORT"])
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSlack{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.posts = append(f.posts, r.URL.Path+" "+string(b))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok": true, "channel": "C0DEPLOY", "ts": "1700000000.000100"}`)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

func slackClick(t *testing.T, value, user string, signedAt time.Time, sign bool) (int, string) {
	t.Helper()
	payload := fmt.Sprintf(`{"type":"block_actions","user":{"id":"U%s","username":"%s","name":"%s"},"channel":{"id":"C0DEPLOY"},"container":{"message_ts":"1700000000.000100"},"message":{"ts":"1700000000.000100"},"actions":[{"value":"%s"}]}`,
		user, user, user, value)
	body := "payload=" + url.QueryEscape(payload)
	req, _ := http.NewRequest(http.MethodPost, ctrlURL+slack.PathInteractions, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	ts := strconv.FormatInt(signedAt.Unix(), 10)
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	if sign {
		req.Header.Set("X-Slack-Signature", slack.Sign(slackSigningSecret, ts, []byte(body)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const gatePipeline = `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: release}
spec:
  params: [{name: id}]
  results:
  - {name: choice, value: $(tasks.approve.results.choice)}
  - {name: chosen-by, value: $(tasks.approve.results.chosen-by)}
  - {name: recorded, value: $(tasks.after.results.recorded)}
  - {name: decision, value: $(tasks.after.results.decision)}
  tasks:
  - name: init
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: init}
    - {name: id, value: $(params.id)}
    - {name: set, value: [state.version=2.0.0]}
    - name: app-config
      value: |
        cicd-contexts:
          stage:
            channel: releases
            pipelines:
              release:
                event-handlers:
                  approve:
                    manual-choice:
                      title: "Release {{ state.version }}?"
                      wait: true
                      allowed-users: [alice, bob]
                      choices:
                        decide:
                          header: "Ship {{ state.version }} to prod?"
                          options:
                          - {text: Ship it, value: ship}
                          - {text: Stop, value: stop}
  - name: approve
    runAfter: [init]
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: handle-event}
    - {name: id, value: $(params.id)}
    - {name: event, value: release=approve}
  - name: after
    taskRef: {apiVersion: cicdstatemgr.dev/v1alpha1, kind: CicdState}
    params:
    - {name: op, value: get}
    - {name: id, value: $(params.id)}
    - {name: set, value: ["state.decision=$(tasks.approve.results.choice) by $(tasks.approve.results.chosen-by)"]}
    - {name: get, value: [recorded=state.choices.release.approve.choice, decision=state.decision]}
`

// TestApprovalGateWithSlack: a handle-event task waits on a manual-choice;
// a correctly signed Slack click decides it, the next task receives the
// choice; unsigned, stale and late clicks change nothing.
func TestApprovalGateWithSlack(t *testing.T) {
	fake := startFakeSlack(t)
	ns := namespace(t, "gate")
	kubectl(t, gatePipeline, "-n", ns, "apply", "-f", "-")
	kubectl(t, pipelineRun("release-1", "release", map[string]string{"id": ns + "-ctx"}), "-n", ns, "create", "-f", "-")

	if c := waitCustomRunReason(t, ns, "tekton.dev/pipelineTask=approve", "WaitingForDecision", 60*time.Second); !strings.Contains(c.Message, "ship, stop") {
		t.Errorf("waiting message does not list the options: %s", c.Message)
	}
	fake.mu.Lock()
	posted := strings.Join(fake.posts, "\n")
	fake.mu.Unlock()
	if !strings.Contains(posted, `"text": "Release 2.0.0?"`) || !strings.Contains(posted, `Ship 2.0.0 to prod?`) {
		t.Errorf("the manual-choice message was not posted as rendered:\n%s", posted)
	}

	if code, _ := slackClick(t, "ship", "alice", time.Now(), false); code != http.StatusUnauthorized {
		t.Errorf("unsigned click: %d, want 401", code)
	}
	if code, _ := slackClick(t, "ship", "alice", time.Now().Add(-6*time.Minute), true); code != http.StatusUnauthorized {
		t.Errorf("stale click: %d, want 401", code)
	}
	if code, _ := slackClick(t, "ship", "mallory", time.Now(), true); code != http.StatusForbidden {
		t.Errorf("click by a user not allowed: %d, want 403", code)
	}
	time.Sleep(500 * time.Millisecond)
	if cr := customRunOf(t, ns, "release-1", "approve"); cr.IsDone() {
		t.Fatalf("refused clicks decided the gate: %+v", cr.Status.Conditions)
	}
	if code, body := slackClick(t, "ship", "alice", time.Now(), true); code != http.StatusOK {
		t.Fatalf("signed click: %d %s", code, body)
	}
	pr := waitPipelineRun(t, ns, "release-1", 60*time.Second)
	succeeded(t, pr)
	want := map[string]string{"choice": "ship", "chosen-by": "alice", "recorded": "ship", "decision": "ship by alice"}
	got := prResults(pr)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("result %s = %q, want %q", k, got[k], v)
		}
	}
	code, body := slackClick(t, "stop", "bob", time.Now(), true)
	if code != http.StatusOK || !strings.Contains(body, "already decided") {
		t.Errorf("second click: %d %s", code, body)
	}
	var handled []map[string]any
	cr := customRunOf(t, ns, "release-1", "approve")
	for _, r := range cr.Status.Results {
		if r.Name == "handled" {
			json.Unmarshal([]byte(r.Value), &handled)
		}
	}
	if len(handled) != 1 || handled[0]["status"] != "waiting" || handled[0]["type"] != "manual-choice" {
		t.Errorf("handled = %v", handled)
	}
}

// TestApprovalGateWithCLI: the same gate answered by `cicdstatemgr decide`
// from another process: the waiting CustomRun wakes and succeeds.
func TestApprovalGateWithCLI(t *testing.T) {
	startFakeSlack(t)
	ns := namespace(t, "gatecli")
	kubectl(t, gatePipeline, "-n", ns, "apply", "-f", "-")
	id := ns + "-ctx"
	kubectl(t, pipelineRun("release-1", "release", map[string]string{"id": id}), "-n", ns, "create", "-f", "-")
	waitCustomRunReason(t, ns, "tekton.dev/pipelineTask=approve", "WaitingForDecision", 60*time.Second)
	if out := cli(t, "decide", "--namespace", ns, "--id", id, "--option", "stop", "--by", "bob"); !strings.Contains(out, "choice=stop") {
		t.Fatalf("decide printed %q", out)
	}
	pr := waitPipelineRun(t, ns, "release-1", 60*time.Second)
	succeeded(t, pr)
	if got := prResults(pr); got["choice"] != "stop" || got["chosen-by"] != "bob" || got["recorded"] != "stop" {
		t.Fatalf("results %v", got)
	}
}
