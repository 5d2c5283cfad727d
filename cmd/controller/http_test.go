package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/configwatch"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpserver"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/reconciler"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/slack"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

func get(h http.Handler, method, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

// TestSeparatePorts: the probe listener serves health and metrics and no
// Slack route; the Slack listener serves the Slack routes and nothing else.
func TestSeparatePorts(t *testing.T) {
	reg := prometheus.NewRegistry()
	reconciler.NewMetrics(reg).BudgetExceeded(httpserver.BudgetInFlight)
	src := configwatch.NewSource(nil) // no configuration yet
	log := slog.New(slog.DiscardHandler)
	probe, slackMux := newProbeMux(reg, src, log), newSlackMux(src, log, nil)

	if w := get(probe, http.MethodGet, "/healthz"); w.Code != http.StatusOK || w.Body.String() != "ok" {
		t.Errorf("probe /healthz: %d %q", w.Code, w.Body)
	}
	if w := get(probe, http.MethodGet, "/readyz"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("probe /readyz without configuration: %d %q", w.Code, w.Body)
	}
	if w := get(probe, http.MethodGet, "/metrics"); w.Code != http.StatusOK ||
		!strings.Contains(w.Body.String(), `cicdstatemgr_budget_exceeded_total{budget="http_inflight"} 1`) {
		t.Errorf("probe /metrics: %d %.300q", w.Code, w.Body)
	}
	for _, p := range []string{slack.PathInteractions, slack.PathCommands, "/slack/other", "/"} {
		if w := get(probe, http.MethodPost, p); w.Code != http.StatusNotFound {
			t.Errorf("probe POST %s: %d, want 404", p, w.Code)
		}
	}

	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/slack/other", "/gates/x", "/"} {
		if w := get(slackMux, http.MethodGet, p); w.Code != http.StatusNotFound {
			t.Errorf("slack GET %s: %d %q, want 404", p, w.Code, w.Body)
		}
	}
	// the Slack routes exist (not configured yet: 503, not 404)
	for _, p := range []string{slack.PathInteractions, slack.PathCommands} {
		if w := get(slackMux, http.MethodPost, p); w.Code != http.StatusServiceUnavailable {
			t.Errorf("slack POST %s without configuration: %d %q, want 503", p, w.Code, w.Body)
		}
	}
}

// TestReadyzShowsNoConfigurationText: /readyz answers "ok" or "not ready"
// only; the reason goes to the log, once while it stays the same.
func TestReadyzShowsNoConfigurationText(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	reason := errors.New(`invalid controller configuration: config.yaml: slack.url "https://hooks.example/T0SECRET" is not valid`)
	var err error = reason
	h := readyz(func() error { return err }, log)

	for range 2 {
		w := get(h, http.MethodGet, "/readyz")
		if w.Code != http.StatusServiceUnavailable || w.Body.String() != "not ready" {
			t.Fatalf("not ready: %d %q, want 503 \"not ready\"", w.Code, w.Body)
		}
	}
	if n := strings.Count(logged.String(), "T0SECRET"); n != 1 {
		t.Fatalf("the reason is logged %d times, want once:\n%s", n, logged.String())
	}
	err = nil
	if w := get(h, http.MethodGet, "/readyz"); w.Code != http.StatusOK || w.Body.String() != "ok" {
		t.Fatalf("ready: %d %q", w.Code, w.Body)
	}
	err = reason
	get(h, http.MethodGet, "/readyz")
	if n := strings.Count(logged.String(), "T0SECRET"); n != 2 {
		t.Fatalf("the reason is logged %d times after it came back, want twice", n)
	}

	// and through the probe mux of a source whose configuration is invalid
	src := configwatch.NewSource(nil)
	if src.Apply([]byte("cicdstatemgr:\n  budgets: {valueBytes: -7}\n"), nil) == nil {
		t.Fatal("the invalid configuration was accepted")
	}
	w := get(newProbeMux(prometheus.NewRegistry(), src, slog.New(slog.DiscardHandler)), http.MethodGet, "/readyz")
	if w.Body.String() != "not ready" || strings.Contains(w.Body.String(), "budgets") {
		t.Fatalf("/readyz of an invalid configuration: %d %q", w.Code, w.Body)
	}
}

// TestSlackBodyBudgetFromConfig: budgets.slackBodyBytes of config-cicdstatemgr
// caps the Slack body (413 before the body is read, counted as http_body);
// under it the request goes on to the next check.
func TestSlackBodyBudgetFromConfig(t *testing.T) {
	src := configwatch.NewSource(func(st *store.Store, _ *config.Config) *engine.Engine {
		return &engine.Engine{Store: st, Gates: gate.New(st)}
	})
	// Redis is never reached: every request below is refused before.
	if err := src.Apply([]byte("cicdstatemgr:\n  datasources: {redis: {host: 127.0.0.1, port: 1}}\n  budgets: {slackBodyBytes: 500}\n"),
		[]byte("cicdstatemgr:\n  slack: {signingSecret: s3cret}\n")); err != nil {
		t.Fatal(err)
	}
	var exceeded []string
	mux := newSlackMux(src, slog.New(slog.DiscardHandler), func(b string) { exceeded = append(exceeded, b) })
	post := func(body string, signature string) (*httptest.ResponseRecorder, int) {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req := httptest.NewRequest(http.MethodPost, slack.PathCommands, nil)
		read := &readCounter{r: strings.NewReader(body)}
		req.Body, req.ContentLength = read, int64(len(body))
		req.Header.Set(slack.HeaderTimestamp, ts)
		if signature == "" {
			signature = slack.Sign("s3cret", ts, []byte(body))
		}
		req.Header.Set(slack.HeaderSignature, signature)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		return w, read.n
	}
	if w, n := post("command=/x&text="+strings.Repeat("a", 600), ""); w.Code != http.StatusRequestEntityTooLarge || n != 0 {
		t.Fatalf("601+ bytes with a budget of 500: %d %q, %d bytes read", w.Code, w.Body, n)
	}
	if len(exceeded) != 1 || exceeded[0] != httpserver.BudgetBody {
		t.Fatalf("reported %q", exceeded)
	}
	// under the budget the body is read and its signature checked (a wrong one: 401)
	if w, n := post("command=/x&text="+strings.Repeat("a", 400), "v0=00"); w.Code != http.StatusUnauthorized || n == 0 {
		t.Fatalf("under the budget, wrong signature: %d %q, %d bytes read", w.Code, w.Body, n)
	}
}

type readCounter struct {
	r io.Reader
	n int
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func (c *readCounter) Close() error { return nil }

// TestSlackBodyBudgetDefault: the configuration's default Slack body budget
// is the Slack handler's default.
func TestSlackBodyBudgetDefault(t *testing.T) {
	if config.DefaultBudgets().SlackBodyBytes != slack.DefaultMaxBodyBytes {
		t.Fatalf("config default %d, slack default %d", config.DefaultBudgets().SlackBodyBytes, slack.DefaultMaxBodyBytes)
	}
}
