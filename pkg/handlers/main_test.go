package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// srv is the Redis shared by the tests (default user off, like production);
// each test uses a key prefix of its own.
var srv *redistest.Server

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{}) // go-redis logs every failed dial while the server starts
	redistest.Main(m, &srv, redistest.WithDefaultUserDisabled())
}

// request is one request the endpoint received.
type request struct {
	Method, Path string
	Header       http.Header
	Body         string
}

// endpoint answers like postman-echo.com/post (the basics fixtures' echo
// server) and records every request. reply, when set, may answer instead.
type endpoint struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []request
	reply func(n int, w http.ResponseWriter, r *http.Request) bool
}

func newEndpoint(t *testing.T) *endpoint {
	e := &endpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) setReply(fn func(n int, w http.ResponseWriter, r *http.Request) bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reply = fn
}

func (e *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	n := len(e.reqs)
	e.reqs = append(e.reqs, request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(body)})
	reply := e.reply
	e.mu.Unlock()
	if reply != nil && reply(n, w, r) {
		return
	}
	headers := map[string]string{"host": r.Host}
	for k, v := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	var data, js any = string(body), nil
	if v, err := document.ParseJSON(body); err == nil {
		data, js = v, v
	}
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	hm := document.NewMap()
	for _, k := range names {
		hm.Set(k, headers[k])
	}
	out := document.NewMap()
	out.Set("args", document.NewMap())
	out.Set("data", data)
	out.Set("files", document.NewMap())
	out.Set("form", document.NewMap())
	out.Set("headers", hm)
	out.Set("json", js)
	out.Set("url", e.URL+r.URL.Path)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write([]byte(document.MustJSON(out, document.JSONStyle{})))
}

// take returns and forgets the recorded requests.
func (e *endpoint) take() []request {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.reqs
	e.reqs = nil
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is one test's world: the endpoint, a store with its own key prefix,
// the basics config pointing at the endpoint, a runner and an engine.
type env struct {
	t      *testing.T
	ep     *endpoint
	st     *store.Store
	cfg    *config.Config
	runner *handlers.Runner
	eng    *engine.Engine
	logs   *syncBuffer
	id     string
}

var seq atomic.Int64

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "basics", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newEnv builds an env; edit, when given, changes config.yaml's text (after
// the echo server URL was pointed at the test endpoint).
func newEnv(t *testing.T, edit func(string) string) *env {
	t.Helper()
	ep := newEndpoint(t)
	cfgText := strings.ReplaceAll(readTestdata(t, "config.yaml"), "http://127.0.0.1:18080", ep.URL)
	if edit != nil {
		cfgText = edit(cfgText)
	}
	cfg, err := config.Parse([]byte(cfgText), []byte(readTestdata(t, "secrets.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(store.Options{
		Addr: srv.Addr, Username: srv.Username, Password: srv.Password,
		KeyPrefix: fmt.Sprintf("ev%d:%s", seq.Add(1), strings.ReplaceAll(t.Name(), "/", "_")),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	templates := tmpl.New(tmpl.Options{})
	// The basics fixtures are the CLI's: trigger headers see the document.
	runner := handlers.NewRunner(st, templates, log, handlers.WithHTTPClient(&httpclient.Client{
		Timeout: 3 * time.Second, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	}), handlers.WithDocumentInHeaders())
	return &env{
		t: t, ep: ep, st: st, cfg: cfg, runner: runner, logs: logs,
		eng: &engine.Engine{Store: st, Templates: templates, Handlers: runner, Log: log},
		id:  "context-data-id-1",
	}
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) bases(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", "basics", "bases", name))
}

// init creates the document from app (the basics app.yaml when empty).
func (e *env) init(app string, sets ...document.Assignment) {
	e.t.Helper()
	if app == "" {
		app = readTestdata(e.t, "app.yaml")
	}
	_, err := e.eng.Do(e.ctx(), engine.Request{
		Op: engine.OpInit, Namespace: "ns", ID: e.id, Config: e.cfg, AppConfig: []byte(app), Bases: e.bases, Sets: sets,
	})
	if err != nil {
		e.t.Fatalf("init: %v", err)
	}
}

// handle runs handle-event pipeline=event through the engine.
func (e *env) handle(event string, sets ...document.Assignment) (*engine.Outcome, error) {
	e.t.Helper()
	ev, err := engine.ParseEvent(event)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.eng.Do(e.ctx(), engine.Request{Namespace: "ns", Op: engine.OpHandleEvent, ID: e.id, Config: e.cfg, Event: ev, Sets: sets})
}

// mustHandle is handle that must succeed; it returns the handled summary.
func (e *env) mustHandle(event string, sets ...document.Assignment) string {
	e.t.Helper()
	out, err := e.handle(event, sets...)
	if err != nil {
		e.t.Fatalf("handle-event %s: %v", event, err)
	}
	return out.Handled
}

func (e *env) doc() *document.Map {
	e.t.Helper()
	d, err := e.st.Get(e.ctx(), store.Ref("ns", e.id))
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// get is the value at path of the stored document ("" when absent).
func (e *env) get(path string) any {
	e.t.Helper()
	v, _, err := document.Lookup(e.doc(), path)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func set(path string, v any) document.Assignment { return document.Assignment{Path: path, Value: v} }

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	v, err := document.ParseJSON([]byte(s))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return document.MustJSON(v, document.JSONStyle{})
}

func wantRequests(t *testing.T, got []request, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("endpoint got %d requests, want %d: %+v", len(got), n, got)
	}
}

func wantReason(t *testing.T, err error, reason string) *engine.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want reason %s", reason)
	}
	e := engine.AsError(err, "")
	if e.Reason != reason {
		t.Fatalf("reason %q (%v), want %s", e.Reason, err, reason)
	}
	return e
}

// initRequest is init of the basics app.yaml with an event.
func initRequest(e *env, event string, sets ...document.Assignment) engine.Request {
	ev, err := engine.ParseEvent(event)
	if err != nil {
		e.t.Fatal(err)
	}
	return engine.Request{Namespace: "ns", Op: engine.OpInit, ID: e.id, Config: e.cfg, AppConfig: []byte(readTestdata(e.t, "app.yaml")),
		Bases: e.bases, Sets: sets, Event: ev}
}
