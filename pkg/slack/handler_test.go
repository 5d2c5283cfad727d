package slack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/slack"
)

var now = time.Unix(1_700_000_000, 0)

type fixture struct {
	t        *testing.T
	choices  *gate.Store
	h        *slack.Handler
	mu       sync.Mutex
	forwards [][]byte
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, choices: newChoices(t)}
	f.h = &slack.Handler{
		Gates:         f.choices,
		SigningSecret: func() string { return secret },
		Clock:         func() time.Time { return now },
		Forward: func(_ context.Context, b []byte) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.forwards = append(f.forwards, append([]byte(nil), b...))
			return nil
		},
	}
	return f
}

// gate registers a pending choice posted as Slack message C1/<ts>.
func (f *fixture) gate(key, ts string, allowed ...string) gate.Gate {
	f.t.Helper()
	ctx := context.Background()
	p, err := f.choices.Register(ctx, gate.Gate{
		Key: key, ContextID: "ctx-" + key, Title: "Deploy 1.0?", AllowedUsers: allowed,
		Options: []gate.Option{{Value: "deploy", Text: "Deploy"}, {Value: "skip", Text: "Skip"}},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.choices.AttachSlackMessage(ctx, key, "C1", ts); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) decision(key string) *gate.Decision {
	f.t.Helper()
	_, d, err := f.choices.Get(context.Background(), key)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) do(req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	return w
}

// slackRequest is a POST of form to path, signed at `at` (unsigned when at is zero).
func slackRequest(path string, form url.Values, at time.Time) *http.Request {
	body := []byte(form.Encode())
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !at.IsZero() {
		for k, v := range signedHeader(secret, at, body) {
			req.Header[k] = v
		}
	}
	return req
}

func clickPayload(userID, username, ts, value string) url.Values {
	p := map[string]any{
		"type":       "block_actions",
		"api_app_id": "A1",
		"user":       map[string]any{"id": userID, "username": username, "name": username},
		"channel":    map[string]any{"id": "C1", "name": "deploys"},
		"container":  map[string]any{"type": "message", "message_ts": ts, "channel_id": "C1"},
		"message":    map[string]any{"ts": ts},
		"actions": []any{
			map[string]any{"type": "button", "action_id": "a1", "block_id": "b1", "value": value},
		},
		"response_url": "https://hooks.slack.com/actions/T1/1/x",
	}
	b, _ := json.Marshal(p)
	return url.Values{"payload": {string(b)}}
}

func decodeJSON(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("reply %q is not JSON: %v", w.Body.String(), err)
	}
	return m
}

func TestInteractionResolvesPendingChoice(t *testing.T) {
	f := newFixture(t)
	f.gate("run-1", "1700000000.000100")
	w := f.do(slackRequest(slack.PathInteractions, clickPayload("U1", "alice", "1700000000.000100", "deploy"), now))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	d := f.decision("run-1")
	// The verified user id decides; the username is a display name.
	if d == nil || d.Choice != "deploy" || d.ChosenBy != "U1" || d.UserID != "U1" || d.UserName != "alice" || d.Via != gate.ViaSlack || !d.At.Equal(now) {
		t.Fatalf("decision %+v", d)
	}
	if len(f.forwards) != 0 {
		t.Fatalf("a matched click was forwarded: %s", f.forwards)
	}
	// A second click (another user, another button): 200, first decision kept.
	w = f.do(slackRequest(slack.PathInteractions, clickPayload("U2", "bob", "1700000000.000100", "skip"), now))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "already decided by U1 (alice)") {
		t.Fatalf("second click: %d %s", w.Code, w.Body)
	}
	if d2 := f.decision("run-1"); *d2 != *d {
		t.Fatalf("decision changed to %+v", d2)
	}
}

func TestInteractionRejections(t *testing.T) {
	f := newFixture(t)
	f.gate("run-1", "1.000001", "UALLOWED1")
	cases := []struct {
		name     string
		req      *http.Request
		code     int
		bodyHas  string
		decision bool
	}{
		{"unsigned", slackRequest(slack.PathInteractions, clickPayload("UALLOWED1", "a", "1.000001", "deploy"), time.Time{}), http.StatusUnauthorized, "invalid signature", false},
		{"stale", slackRequest(slack.PathInteractions, clickPayload("UALLOWED1", "a", "1.000001", "deploy"), now.Add(-6*time.Minute)), http.StatusUnauthorized, "stale request", false},
		{"future", slackRequest(slack.PathInteractions, clickPayload("UALLOWED1", "a", "1.000001", "deploy"), now.Add(6*time.Minute)), http.StatusUnauthorized, "stale request", false},
		{"not allowed", slackRequest(slack.PathInteractions, clickPayload("UOTHER1", "mallory", "1.000001", "deploy"), now), http.StatusForbidden, "not allowed", false},
		{"username equal to an allowed id", slackRequest(slack.PathInteractions, clickPayload("UOTHER2", "UALLOWED1", "1.000001", "deploy"), now), http.StatusForbidden, "not allowed", false},
		{"no user id", slackRequest(slack.PathInteractions, clickPayload("", "UALLOWED1", "1.000001", "deploy"), now), http.StatusBadRequest, "ChosenBy", false},
		{"not an option", slackRequest(slack.PathInteractions, clickPayload("UALLOWED1", "a", "1.000001", "nuke"), now), http.StatusBadRequest, "invalid choice", false},
		{"malformed payload", slackRequest(slack.PathInteractions, url.Values{"payload": {"{"}}, now), http.StatusBadRequest, "JSON", false},
		{"wrong method", httptest.NewRequest(http.MethodGet, slack.PathInteractions, nil), http.StatusMethodNotAllowed, "", false},
		{"too large", func() *http.Request {
			r := slackRequest(slack.PathInteractions, url.Values{"payload": {strings.Repeat("x", slack.DefaultMaxBodyBytes)}}, now)
			return r
		}(), http.StatusRequestEntityTooLarge, "", false},
		{"allowed user", slackRequest(slack.PathInteractions, clickPayload("UALLOWED1", "a", "1.000001", "skip"), now), http.StatusOK, `"ok":true`, true},
	}
	for _, c := range cases {
		w := f.do(c.req)
		if w.Code != c.code || !strings.Contains(w.Body.String(), c.bodyHas) {
			t.Errorf("%s: %d %q, want %d containing %q", c.name, w.Code, w.Body, c.code, c.bodyHas)
		}
		if got := f.decision("run-1") != nil; got != c.decision {
			t.Fatalf("%s: decided = %v, want %v", c.name, got, c.decision)
		}
	}
	if len(f.forwards) != 0 {
		t.Fatalf("rejected requests were forwarded: %q", f.forwards)
	}
}

func TestInteractionWithoutPendingChoiceIsForwarded(t *testing.T) {
	f := newFixture(t)
	f.gate("run-1", "1.000001")
	form := clickPayload("U1", "alice", "9.999999", "deploy-1.0-app|eyJ0cmlnZ2VyIjoiZGVwbG95In0=")
	w := f.do(slackRequest(slack.PathInteractions, form, now))
	if w.Code != http.StatusOK || len(f.forwards) != 1 {
		t.Fatalf("status %d, %d forwards: %s", w.Code, len(f.forwards), w.Body)
	}
	var fwd map[string]any
	if err := json.Unmarshal(f.forwards[0], &fwd); err != nil {
		t.Fatal(err)
	}
	av, _ := fwd["action_values"].([]any)
	if len(av) != 1 || av[0] != "deploy-1.0-app|eyJ0cmlnZ2VyIjoiZGVwbG95In0=" || fwd["api_app_id"] != "A1" || fwd["response_url"] == nil {
		t.Fatalf("forwarded %s", f.forwards[0])
	}
	if !bytes.Equal(bytes.TrimSpace(w.Body.Bytes()), f.forwards[0]) {
		t.Fatalf("reply %s differs from the forwarded payload", w.Body)
	}
	if f.decision("run-1") != nil {
		t.Fatal("an unrelated click decided a choice")
	}
	// Without Forward: 200, nothing handled. (Each request is signed anew: a signed
	// request is accepted once.)
	f.h = &slack.Handler{Gates: f.choices, SigningSecret: func() string { return secret }, Clock: func() time.Time { return now }}
	if w := f.do(slackRequest(slack.PathInteractions, form, now.Add(time.Second))); w.Code != http.StatusOK || decodeJSON(t, w)["handled"] != false {
		t.Fatalf("without Forward: %d %s", w.Code, w.Body)
	}
	// A failing Forward is a 502.
	f.h = &slack.Handler{Gates: f.choices, SigningSecret: func() string { return secret }, Clock: func() time.Time { return now },
		Forward: func(context.Context, []byte) error { return errors.New("trigger down") }}
	if w := f.do(slackRequest(slack.PathInteractions, form, now.Add(2*time.Second))); w.Code != http.StatusBadGateway {
		t.Fatalf("failing Forward: %d %s", w.Code, w.Body)
	}
}

func TestSlashCommandRepliesFlatJSON(t *testing.T) {
	f := newFixture(t)
	form := url.Values{
		"command": {"/start-app-deploy"}, "text": {"dev myapp https://git/x.git 1.0"},
		"user_id": {"U1", "ignored"}, "user_name": {"alice"}, "trigger_id": {"1.2.abc"},
	}
	for i, path := range []string{slack.PathCommands, slack.PathInteractions} {
		f.forwards = nil
		w := f.do(slackRequest(path, form, now.Add(time.Duration(i)*time.Second)))
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		got := decodeJSON(t, w)
		want := map[string]any{"command": "/start-app-deploy", "text": "dev myapp https://git/x.git 1.0",
			"user_id": "U1", "user_name": "alice", "trigger_id": "1.2.abc"}
		if len(got) != len(want) {
			t.Fatalf("%s: reply %v", path, got)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v", path, k, got[k], v)
			}
		}
		if len(f.forwards) != 1 || !bytes.Equal(f.forwards[0], bytes.TrimSpace(w.Body.Bytes())) {
			t.Fatalf("%s: forwarded %q", path, f.forwards)
		}
	}
	if w := f.do(slackRequest(slack.PathCommands, form, time.Time{})); w.Code != http.StatusUnauthorized {
		t.Fatalf("unsigned command: %d", w.Code)
	}
	if w := f.do(slackRequest(slack.PathCommands, url.Values{"other": {"x"}}, now)); w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != "{}" {
		t.Fatalf("neither payload nor command: %d %s", w.Code, w.Body)
	}
	// No signing secret configured: the Slack routes are off.
	f.h.SigningSecret = func() string { return "" }
	if w := f.do(slackRequest(slack.PathCommands, form, now)); w.Code != http.StatusNotFound {
		t.Fatalf("without a signing secret: %d", w.Code)
	}
}

// TestGatesPathIsGone: the bearer-token route /gates/<token> was removed; a request
// there (even with a bearer token) is a 404 and decides nothing.
func TestGatesPathIsGone(t *testing.T) {
	f := newFixture(t)
	f.gate("run-1", "1.000001")
	for _, m := range []string{http.MethodPost, http.MethodGet} {
		req := httptest.NewRequest(m, "/gates/0123abcd", strings.NewReader(`{"choice": "deploy", "chosenBy": "ci-bot"}`))
		req.Header.Set("Authorization", "Bearer s3cr3t-api-token")
		if w := f.do(req); w.Code != http.StatusNotFound {
			t.Errorf("%s /gates/...: %d %s, want 404", m, w.Code, w.Body)
		}
	}
	if d := f.decision("run-1"); d != nil {
		t.Fatalf("decided through /gates: %+v", d)
	}
}

func TestCancelledChoiceIsNoLongerWaiting(t *testing.T) {
	f := newFixture(t)
	f.gate("run-1", "1.000001")
	if err := f.choices.Cancel(context.Background(), "run-1"); err != nil {
		t.Fatal(err)
	}
	w := f.do(slackRequest(slack.PathInteractions, clickPayload("U1", "alice", "1.000001", "deploy"), now))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "no longer waiting") || len(f.forwards) != 0 {
		t.Fatalf("click on a cancelled choice: %d %s", w.Code, w.Body)
	}
	if f.decision("run-1") != nil {
		t.Fatal("a cancelled choice was decided")
	}
}
