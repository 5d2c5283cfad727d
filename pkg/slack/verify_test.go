package slack_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/slack"
)

const secret = "8f742231b10e8888abcd99yyyzzz85a5"

func signedHeader(secret string, at time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	h := http.Header{}
	h.Set(slack.HeaderTimestamp, ts)
	h.Set(slack.HeaderSignature, slack.Sign(secret, ts, body))
	return h
}

func TestSignMatchesSlackDocumentationExample(t *testing.T) {
	// The example of https://api.slack.com/authentication/verifying-requests-from-slack.
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	got := slack.Sign(secret, "1531420618", []byte(body))
	if want := "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	h := http.Header{}
	h.Set(slack.HeaderTimestamp, "1531420618")
	h.Set(slack.HeaderSignature, got)
	if err := slack.VerifySignature(secret, h, []byte(body), time.Unix(1531420618+10, 0)); err != nil {
		t.Fatal(err)
	}
}

func TestVerifySignature(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte("payload=%7B%22a%22%3A1%7D")
	cases := []struct {
		name   string
		secret string
		header func() http.Header
		body   []byte
		want   error
	}{
		{"valid", secret, func() http.Header { return signedHeader(secret, now, body) }, body, nil},
		{"valid 4 minutes old", secret, func() http.Header { return signedHeader(secret, now.Add(-4*time.Minute), body) }, body, nil},
		{"wrong secret", secret, func() http.Header { return signedHeader("other", now, body) }, body, slack.ErrBadSignature},
		{"tampered body", secret, func() http.Header { return signedHeader(secret, now, body) }, append([]byte{}, append(body, 'x')...), slack.ErrBadSignature},
		{"no secret configured", "", func() http.Header { return signedHeader("", now, body) }, body, slack.ErrNoSigningSecret},
		{"missing timestamp", secret, func() http.Header {
			h := signedHeader(secret, now, body)
			h.Del(slack.HeaderTimestamp)
			return h
		}, body, slack.ErrMissingHeader},
		{"missing signature", secret, func() http.Header {
			h := signedHeader(secret, now, body)
			h.Del(slack.HeaderSignature)
			return h
		}, body, slack.ErrMissingHeader},
		{"no headers", secret, func() http.Header { return http.Header{} }, body, slack.ErrMissingHeader},
		{"stale 6 minutes", secret, func() http.Header { return signedHeader(secret, now.Add(-6*time.Minute), body) }, body, slack.ErrStale},
		{"future 6 minutes", secret, func() http.Header { return signedHeader(secret, now.Add(6*time.Minute), body) }, body, slack.ErrStale},
		{"huge timestamp", secret, func() http.Header {
			h := signedHeader(secret, now, body)
			h.Set(slack.HeaderTimestamp, "-9223372036854775808")
			return h
		}, body, slack.ErrStale},
		{"non-numeric timestamp", secret, func() http.Header {
			h := signedHeader(secret, now, body)
			h.Set(slack.HeaderTimestamp, "17e8")
			return h
		}, body, slack.ErrBadTimestamp},
		{"no v0 prefix", secret, func() http.Header {
			h := signedHeader(secret, now, body)
			h.Set(slack.HeaderSignature, strings.TrimPrefix(h.Get(slack.HeaderSignature), "v0="))
			return h
		}, body, slack.ErrBadSignature},
		{"not hex", secret, func() http.Header {
			h := signedHeader(secret, now, body)
			h.Set(slack.HeaderSignature, "v0=zz")
			return h
		}, body, slack.ErrBadSignature},
	}
	for _, c := range cases {
		err := slack.VerifySignature(c.secret, c.header(), c.body, now)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if err != nil && c.secret != "" && strings.Contains(err.Error(), c.secret) {
			t.Errorf("%s: the secret leaked into %q", c.name, err)
		}
	}
}
