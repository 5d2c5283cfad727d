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

// signedClick is a click on the gate message by Slack user id (username is only
// displayed), signed at signedAt (unsigned when sign is false).
type signedClick struct {
	body   string
	header http.Header
}

func newClick(value, userID, username string, signedAt time.Time, sign bool) signedClick {
	payload := fmt.Sprintf(`{"type":"block_actions","user":{"id":"%s","username":"%s","name":"%s"},"channel":{"id":"C0DEPLOY"},"container":{"message_ts":"1700000000.000100"},"message":{"ts":"1700000000.000100"},"actions":[{"value":"%s"}]}`,
		userID, username, username, value)
	c := signedClick{body: "payload=" + url.QueryEscape(payload), header: http.Header{}}
	c.header.Set("Content-Type", "application/x-www-form-urlencoded")
	ts := strconv.FormatInt(signedAt.Unix(), 10)
	c.header.Set("X-Slack-Request-Timestamp", ts)
	if sign {
		c.header.Set("X-Slack-Signature", slack.Sign(slackSigningSecret, ts, []byte(c.body)))
	}
	return c
}

// send posts the click (the very same bytes and headers every time).
func (c signedClick) send(t *testing.T) (int, string) {
	t.Helper()
	return post(t, ctrlURL+slack.PathInteractions, c.header, c.body)
}

func post(t *testing.T, u string, h http.Header, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func slackClick(t *testing.T, value, userID, username string, signedAt time.Time, sign bool) (int, string) {
	t.Helper()
	return newClick(value, userID, username, signedAt, sign).send(t)
}

// The Slack user ids of the gate's allow-list.
const (
	aliceID = "U0ALICE01"
	bobID   = "U0BOB0001"
)

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
                      allowed-users: [U0ALICE01, U0BOB0001]
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
// a correctly signed Slack click decides it as the clicker's Slack user id, the
// next task receives the choice; unsigned, stale, replayed and late clicks, and
// clicks whose username (not id) is allowed, change nothing; /gates/<token> is gone.
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

	if code, _ := slackClick(t, "ship", aliceID, "alice", time.Now(), false); code != http.StatusUnauthorized {
		t.Errorf("unsigned click: %d, want 401", code)
	}
	if code, _ := slackClick(t, "ship", aliceID, "alice", time.Now().Add(-6*time.Minute), true); code != http.StatusUnauthorized {
		t.Errorf("stale click: %d, want 401", code)
	}
	if code, _ := slackClick(t, "ship", "U0MALLORY", "mallory", time.Now(), true); code != http.StatusForbidden {
		t.Errorf("click by a user not allowed: %d, want 403", code)
	}
	// A username is not an identity: mallory renamed to "alice", or to alice's id, is
	// still mallory.
	refused := newClick("ship", "U0MALLORY", "alice", time.Now(), true)
	if code, _ := refused.send(t); code != http.StatusForbidden {
		t.Errorf("click by a user named alice: %d, want 403", code)
	}
	if code, _ := slackClick(t, "ship", "U0MALLORY", aliceID, time.Now(), true); code != http.StatusForbidden {
		t.Errorf("click by a user named %s: %d, want 403", aliceID, code)
	}
	// /gates/<token> and its bearer token are gone.
	if code, body := post(t, ctrlURL+"/gates/0123abcd", http.Header{"Authorization": {"Bearer x"}}, `{"choice":"ship","chosenBy":"x"}`); code != http.StatusNotFound {
		t.Errorf("POST /gates/...: %d %s, want 404", code, body)
	}
	time.Sleep(500 * time.Millisecond)
	if cr := customRunOf(t, ns, "release-1", "approve"); cr.IsDone() {
		t.Fatalf("refused clicks decided the gate: %+v", cr.Status.Conditions)
	}
	// A refused signed click replayed is refused as a replay.
	if code, body := refused.send(t); code != http.StatusConflict || !strings.Contains(body, "replayed") {
		t.Errorf("replayed refused click: %d %s, want 409", code, body)
	}
	click := newClick("ship", aliceID, "alice", time.Now(), true)
	if code, body := click.send(t); code != http.StatusOK {
		t.Fatalf("signed click: %d %s", code, body)
	}
	// The same signed request again: refused, whatever it would have done.
	if code, body := click.send(t); code != http.StatusConflict || !strings.Contains(body, "replayed") {
		t.Errorf("replayed click: %d %s, want 409 replayed", code, body)
	}
	pr := waitPipelineRun(t, ns, "release-1", 60*time.Second)
	succeeded(t, pr)
	want := map[string]string{"choice": "ship", "chosen-by": aliceID, "recorded": "ship", "decision": "ship by " + aliceID}
	got := prResults(pr)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("result %s = %q, want %q", k, got[k], v)
		}
	}
	code, body := slackClick(t, "stop", bobID, "bob", time.Now(), true)
	if code != http.StatusOK || !strings.Contains(body, "already decided by "+aliceID+" (alice)") {
		t.Errorf("second click: %d %s", code, body)
	}
	if code, body := click.send(t); code != http.StatusConflict {
		t.Errorf("replayed click after the decision: %d %s, want 409", code, body)
	}
	// The recorded decision is still the first: alice's id, ship.
	if got := cliGet(t, ns, ns+"-ctx", "state.choices.release.approve.chosenBy"); got != aliceID {
		t.Errorf("recorded chosenBy = %q, want %q", got, aliceID)
	}
	if got := cliGet(t, ns, ns+"-ctx", "state.choices.release.approve.choice"); got != "ship" {
		t.Errorf("recorded choice = %q, want ship", got)
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
	// --by is the operator's word (unverified); the allow-list holds ids, so it must
	// name one.
	if out := cli(t, "decide", "--namespace", ns, "--id", id, "--option", "stop", "--by", bobID); !strings.Contains(out, "choice=stop") {
		t.Fatalf("decide printed %q", out)
	}
	pr := waitPipelineRun(t, ns, "release-1", 60*time.Second)
	succeeded(t, pr)
	if got := prResults(pr); got["choice"] != "stop" || got["chosen-by"] != bobID || got["recorded"] != "stop" {
		t.Fatalf("results %v", got)
	}
}
