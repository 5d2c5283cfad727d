package slack_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/fuzzbudget"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/slack"
)

// FuzzSlackRequest sends arbitrary requests to the handler (some correctly signed, so
// that parsing and deciding are reached): it must never panic nor answer 5xx,
// and each request stays within its resource budget (internal/fuzzbudget):
// the handler reads, parses and decides in bounded time and memory.
func FuzzSlackRequest(f *testing.F) {
	paths := []string{slack.PathInteractions, slack.PathCommands, "/gates/tok", "/", "/slack/other"}
	methods := []string{http.MethodPost, http.MethodGet, http.MethodPut, http.MethodHead}
	click := clickPayload("U1", "alice", "1.000001", "deploy").Encode()
	f.Add(uint8(0), uint8(0), []byte(click), "", "", true, "")
	f.Add(uint8(0), uint8(0), []byte(click), strconv.FormatInt(now.Unix(), 10), "v0=00", false, "")
	f.Add(uint8(0), uint8(0), []byte("payload=%7B%22actions%22%3A%5B%7B%22value%22%3A1%7D%5D%7D"), "", "", true, "")
	f.Add(uint8(0), uint8(0), []byte("payload=null"), "", "", true, "")
	f.Add(uint8(0), uint8(0), []byte("payload=%7B%7D&payload=x"), "", "", true, "")
	f.Add(uint8(0), uint8(0), []byte("%zz"), "", "", true, "")
	f.Add(uint8(1), uint8(0), []byte("command=%2Fdeploy&text=a+b&user_id=U1"), "", "", true, "")
	f.Add(uint8(1), uint8(0), []byte("command=x"), "99999999999999999999", "v0=", false, "")
	f.Add(uint8(2), uint8(0), []byte(`{"choice":"deploy","chosenBy":"x"}`), "", "", false, "Bearer s3cr3t")
	f.Add(uint8(2), uint8(0), []byte(`{"choice":1}`), "", "", false, "Bearer s3cr3t")
	f.Add(uint8(2), uint8(1), []byte(nil), "", "", false, "Bearer")
	f.Add(uint8(3), uint8(2), []byte("x"), "-1", "v0=zz", false, "Basic x")

	choices := newChoices(f)
	ctx := context.Background()
	if _, err := choices.Register(ctx, gate.Gate{Key: "fuzz", ContextID: "c",
		Options: []gate.Option{{Value: "deploy"}, {Value: "skip"}}}); err != nil {
		f.Fatal(err)
	}
	if err := choices.AttachSlackMessage(ctx, "fuzz", "C1", "1.000001"); err != nil {
		f.Fatal(err)
	}
	h := &slack.Handler{
		Gates:         choices,
		SigningSecret: func() string { return secret },
		Clock:         func() time.Time { return now },
		Forward:       func(context.Context, []byte) error { return nil },
	}
	f.Fuzz(func(t *testing.T, route, method uint8, body []byte, ts, sig string, sign bool, auth string) {
		req := httptest.NewRequest(methods[int(method)%len(methods)], "/", bytes.NewReader(body))
		req.URL = &url.URL{Path: paths[int(route)%len(paths)]}
		req.Header.Set(slack.HeaderTimestamp, ts)
		req.Header.Set(slack.HeaderSignature, sig)
		if sign {
			for k, v := range signedHeader(secret, now, body) {
				req.Header[k] = v
			}
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		fuzzbudget.Check(t, fuzzbudget.For(fuzzbudget.Size(body, ts, sig, auth), 0), func() { h.ServeHTTP(w, req) },
			route, method, body, ts, sig, sign, auth)
		if w.Code >= 500 {
			t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, w.Code, w.Body)
		}
	})
}
