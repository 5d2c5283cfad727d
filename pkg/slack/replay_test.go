package slack_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/slack"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// TestReplayedClickIsRefused: a signed click is accepted once. The first one decides
// (positive control); the same signed request again is a 409 that changes nothing; a
// new click (new timestamp) is answered "already decided" as before.
func TestReplayedClickIsRefused(t *testing.T) {
	f := newFixture(t)
	f.gate("run-1", "1.000001", "U024BE7LH")
	form := clickPayload("U024BE7LH", "alice", "1.000001", "deploy")
	body := form.Encode()
	hdr := signedHeader(secret, now, []byte(body))
	send := func() (int, string) {
		req := slackRequest(slack.PathInteractions, form, time.Time{})
		for k, v := range hdr {
			req.Header[k] = v
		}
		w := f.do(req)
		return w.Code, w.Body.String()
	}
	if code, b := send(); code != http.StatusOK || !strings.Contains(b, `"ok":true`) {
		t.Fatalf("first click: %d %s", code, b)
	}
	first := f.decision("run-1")
	if first == nil || first.Choice != "deploy" || first.UserID != "U024BE7LH" {
		t.Fatalf("first click decided %+v", first)
	}
	for i := 0; i < 2; i++ {
		if code, b := send(); code != http.StatusConflict || !strings.Contains(b, "replayed request") {
			t.Fatalf("replay %d: %d %s, want 409 replayed request", i, code, b)
		}
	}
	if d := f.decision("run-1"); *d != *first {
		t.Fatalf("a replay changed the decision to %+v", d)
	}
	// The same click signed a second later is a new request: already decided.
	w := f.do(slackRequest(slack.PathInteractions, form, now.Add(time.Second)))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "already decided by U024BE7LH (alice)") {
		t.Fatalf("new click: %d %s", w.Code, w.Body)
	}
	if len(f.forwards) != 0 {
		t.Fatalf("forwarded %q", f.forwards)
	}
}

// TestReplayBeforeDecidingIsRefused: a replay of a click refused by the allow-list
// is refused as a replay, and a replay of a click that was never decided (a gate
// registered after the first request) does not decide it either.
func TestReplayBeforeDecidingIsRefused(t *testing.T) {
	f := newFixture(t)
	form := clickPayload("U024BE7LH", "alice", "2.000002", "deploy")
	// No gate yet: the click is forwarded.
	if w := f.do(slackRequest(slack.PathInteractions, form, now)); w.Code != http.StatusOK || len(f.forwards) != 1 {
		t.Fatalf("first click: %d %s, %d forwards", w.Code, w.Body, len(f.forwards))
	}
	f.gate("run-2", "2.000002")
	if w := f.do(slackRequest(slack.PathInteractions, form, now)); w.Code != http.StatusConflict {
		t.Fatalf("replay: %d %s, want 409", w.Code, w.Body)
	}
	if d := f.decision("run-2"); d != nil {
		t.Fatalf("a replayed click decided %+v", d)
	}
	if len(f.forwards) != 1 {
		t.Fatalf("a replay was forwarded: %d forwards", len(f.forwards))
	}
}

// TestReplayedForwardIsForwardedOnce: clicks matching no gate and slash commands go to
// Forward once, however often the signed request is sent.
func TestReplayedForwardIsForwardedOnce(t *testing.T) {
	f := newFixture(t)
	click := clickPayload("U1", "alice", "9.999999", "deploy-1.0-app|eyJ0cmlnZ2VyIjoiZGVwbG95In0=")
	cmd := url.Values{"command": {"/start-app-deploy"}, "text": {"dev myapp"}, "user_id": {"U1"}}
	for _, c := range []struct {
		path string
		form url.Values
	}{{slack.PathInteractions, click}, {slack.PathCommands, cmd}} {
		f.forwards = nil
		if w := f.do(slackRequest(c.path, c.form, now)); w.Code != http.StatusOK || len(f.forwards) != 1 {
			t.Fatalf("%s first: %d %s, %d forwards", c.path, w.Code, w.Body, len(f.forwards))
		}
		for i := 0; i < 3; i++ {
			if w := f.do(slackRequest(c.path, c.form, now)); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "replayed") {
				t.Fatalf("%s replay: %d %s", c.path, w.Code, w.Body)
			}
		}
		if len(f.forwards) != 1 {
			t.Fatalf("%s: forwarded %d times, want once", c.path, len(f.forwards))
		}
		// A replay on the other route is the same signed request: refused too.
		other := slack.PathCommands
		if c.path == slack.PathCommands {
			other = slack.PathInteractions
		}
		if w := f.do(slackRequest(other, c.form, now)); w.Code != http.StatusConflict || len(f.forwards) != 1 {
			t.Fatalf("%s replayed on %s: %d, %d forwards", c.path, other, w.Code, len(f.forwards))
		}
	}
}

// TestReplayGuardFailsClosed: when Redis is unreachable the mark cannot be written,
// so a signed request is refused with 503 and neither decides nor forwards; without a
// gate store the Slack routes answer 503 too.
func TestReplayGuardFailsClosed(t *testing.T) {
	st, err := store.New(store.Options{Addr: "127.0.0.1:1", KeyPrefix: "down", DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	forwards := 0
	h := &slack.Handler{
		Gates:         gate.New(st),
		SigningSecret: func() string { return secret },
		Clock:         func() time.Time { return now },
		Forward:       func(context.Context, []byte) error { forwards++; return nil },
	}
	for _, req := range []*http.Request{
		slackRequest(slack.PathInteractions, clickPayload("U1", "alice", "1.000001", "deploy"), now),
		slackRequest(slack.PathCommands, url.Values{"command": {"/x"}}, now),
	} {
		w := httptestRecorder(h, req)
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "replays") {
			t.Errorf("%s with Redis down: %d %s, want 503", req.URL.Path, w.Code, w.Body)
		}
	}
	if forwards != 0 {
		t.Fatalf("forwarded %d requests with Redis down", forwards)
	}
	h = &slack.Handler{SigningSecret: func() string { return secret }, Clock: func() time.Time { return now },
		Forward: func(context.Context, []byte) error { forwards++; return nil }}
	if w := httptestRecorder(h, slackRequest(slack.PathCommands, url.Values{"command": {"/x"}}, now)); w.Code != http.StatusServiceUnavailable || forwards != 0 {
		t.Fatalf("without Gates: %d %s, %d forwards", w.Code, w.Body, forwards)
	}
}

// TestHeadersCheckedBeforeTheBody: unsigned and stale requests are refused from their
// headers alone: the body is never read.
func TestHeadersCheckedBeforeTheBody(t *testing.T) {
	f := newFixture(t)
	for name, req := range map[string]*http.Request{
		"unsigned": slackRequest(slack.PathInteractions, url.Values{"command": {"/x"}}, time.Time{}),
		"stale":    slackRequest(slack.PathInteractions, url.Values{"command": {"/x"}}, now.Add(-time.Hour)),
	} {
		body := &countingReader{r: req.Body}
		req.Body = body
		if w := f.do(req); w.Code != http.StatusUnauthorized || body.n != 0 {
			t.Errorf("%s: %d, %d body bytes read", name, w.Code, body.n)
		}
	}
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func (c *countingReader) Close() error { return nil }

func httptestRecorder(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}
