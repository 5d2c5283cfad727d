package slack_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpserver"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/slack"
)

// commandOfSize is a signed slash command whose form body is exactly n bytes.
func commandOfSize(t *testing.T, n int) []byte {
	t.Helper()
	base := url.Values{"command": {"/deploy"}, "text": {""}}.Encode()
	if n < len(base) {
		t.Fatalf("%d bytes is too small for a command", n)
	}
	body := []byte(url.Values{"command": {"/deploy"}, "text": {strings.Repeat("x", n-len(base))}}.Encode())
	if len(body) != n {
		t.Fatalf("built %d bytes, want %d", len(body), n)
	}
	return body
}

// request is a POST of body to the commands route, signed when signed is true;
// contentLength -1 sends it without a length (chunked).
func request(body []byte, signed bool, contentLength int64) (*http.Request, *countingReader) {
	req := httptest.NewRequest(http.MethodPost, slack.PathCommands, nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signed {
		for k, v := range signedHeader(secret, now, body) {
			req.Header[k] = v
		}
	}
	counted := &countingReader{r: bytes.NewReader(body)}
	req.Body, req.ContentLength = counted, contentLength
	return req, counted
}

// TestBodyCap: a signed body over MaxBodyBytes is answered 413 and counted as
// http_body: before a byte is read when its Content-Length says so, after at
// most the cap (plus one byte) when it has no length; the connection is closed
// so the server does not drain the rest. An unsigned one is refused from its
// headers (401) and not counted. A body of exactly the cap is served.
func TestBodyCap(t *testing.T) {
	const limit = 1000
	f := newFixture(t)
	var exceeded []string
	f.h.MaxBodyBytes = limit
	f.h.Exceeded = func(b string) { exceeded = append(exceeded, b) }

	over := commandOfSize(t, 2*limit)
	req, body := request(over, true, int64(len(over)))
	w := f.do(req)
	if w.Code != http.StatusRequestEntityTooLarge || w.Header().Get("Connection") != "close" || body.n != 0 {
		t.Fatalf("over the cap with a Content-Length: %d %v %q, %d bytes read", w.Code, w.Header(), w.Body, body.n)
	}
	req, body = request(over, true, -1)
	if w := f.do(req); w.Code != http.StatusRequestEntityTooLarge || body.n > limit+1 {
		t.Fatalf("over the cap without a length: %d %q, %d bytes read", w.Code, w.Body, body.n)
	}
	if len(exceeded) != 2 || exceeded[0] != httpserver.BudgetBody || exceeded[1] != httpserver.BudgetBody {
		t.Fatalf("reported %q, want two %q", exceeded, httpserver.BudgetBody)
	}

	req, body = request(over, false, int64(len(over)))
	if w := f.do(req); w.Code != http.StatusUnauthorized || body.n != 0 || len(exceeded) != 2 {
		t.Fatalf("unsigned over the cap: %d, %d bytes read, reported %q", w.Code, body.n, exceeded)
	}

	at := commandOfSize(t, limit)
	req, _ = request(at, true, int64(len(at)))
	if w := f.do(req); w.Code != http.StatusOK || len(f.forwards) != 1 {
		t.Fatalf("a command of exactly the cap: %d %q, %d forwards", w.Code, w.Body, len(f.forwards))
	}
}

// TestDefaultBodyCap: without MaxBodyBytes the cap is 128 KiB: a realistic
// click (a message of 40 blocks) is decided, one byte over the cap is 413.
func TestDefaultBodyCap(t *testing.T) {
	if slack.DefaultMaxBodyBytes != 128<<10 {
		t.Fatalf("DefaultMaxBodyBytes = %d, the documented default is 131072", slack.DefaultMaxBodyBytes)
	}
	f := newFixture(t)
	f.gate("run-1", "1.000001", "UALLOWED1")
	click := clickPayload("UALLOWED1", "alice", "1.000001", "deploy")
	// Slack sends the clicked message's blocks along; 40 sections of 1000
	// characters is a large message, still far below the cap.
	payload := strings.Replace(click.Get("payload"), `"message":{`, `"message":{"blocks":[`+
		strings.TrimSuffix(strings.Repeat(`{"type":"section","text":{"type":"mrkdwn","text":"`+strings.Repeat("y", 1000)+`"}},`, 40), ",")+`],`, 1)
	click.Set("payload", payload)
	if n := len(click.Encode()); n < 40_000 || n > slack.DefaultMaxBodyBytes {
		t.Fatalf("the realistic click is %d bytes", n)
	}
	if w := f.do(slackRequest(slack.PathInteractions, click, now)); w.Code != http.StatusOK || f.decision("run-1") == nil {
		t.Fatalf("a click with a large message: %d %q", w.Code, w.Body)
	}
	over := commandOfSize(t, slack.DefaultMaxBodyBytes+1)
	req, body := request(over, true, int64(len(over)))
	if w := f.do(req); w.Code != http.StatusRequestEntityTooLarge || body.n != 0 {
		t.Fatalf("one byte over the default cap: %d, %d bytes read", w.Code, body.n)
	}
}
