package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// The fixtures: token "alice-token" is alice (group release-managers), who
// may get CustomRuns in team-a only; "bob-token" is bob, who may nowhere.
// Namespaces team-a and team-b exist, and each has contexts.
const (
	aliceToken = "alice-token"
	bobToken   = "bob-token"
)

type fakeStore struct {
	mu    sync.Mutex
	docs  map[string]*document.Map
	hist  map[string][]history.Entry
	reads []string // namespaces or refs read, in order
}

func (f *fakeStore) Contexts(_ context.Context, ns string, limit int) ([]ContextSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, ns)
	var out []ContextSummary
	for ref := range f.docs {
		if n, id, _ := strings.Cut(ref, "/"); n == ns {
			out = append(out, ContextSummary{ID: id, Updated: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)})
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (f *fakeStore) History(_ context.Context, ref string, limit int) ([]history.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, "history "+ref)
	h := f.hist[ref]
	if len(h) > limit {
		h = h[:limit]
	}
	return h, nil
}

func (f *fakeStore) Get(_ context.Context, ref string) (*document.Map, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, "get "+ref)
	d, ok := f.docs[ref]
	if !ok {
		return nil, fmt.Errorf("%w: %s", store.ErrNotFound, ref)
	}
	return d, nil
}

func (f *fakeStore) readsOf(s string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.reads {
		if strings.Contains(r, s) {
			n++
		}
	}
	return n
}

func doc(t *testing.T, js string) *document.Map {
	t.Helper()
	v, err := document.ParseJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return v.(*document.Map)
}

type fixture struct {
	srv     *Server
	h       http.Handler
	store   *fakeStore
	kube    *fake.Clientset
	dyn     *dynamicfake.FakeDynamicClient
	reviews struct {
		sync.Mutex
		tokens, access int
	}
	exceeded []string
}

func gateObject(t *testing.T, ns, name, ref string, decisions ...v1alpha1.Decision) runtime.Object {
	t.Helper()
	g := &v1alpha1.ApprovalGate{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"tekton.dev/pipelineRun": "release-1", "tekton.dev/pipelineTask": "approve"}},
		Spec: v1alpha1.ApprovalGateSpec{
			Title:             "Release <b>3.0.0</b>?",
			Options:           []v1alpha1.Option{{Text: "Ship it", Value: "ship"}, {Text: "Hold", Value: "hold"}},
			Approvers:         v1alpha1.Approvers{Users: []string{"alice", "carol"}},
			ApprovalsRequired: 2, ContextID: ref, Decisions: decisions,
		},
		Status: v1alpha1.ApprovalGateStatus{Outcome: v1alpha1.Outcome{State: v1alpha1.StatePending}},
	}
	u, err := v1alpha1.ToUnstructured(g)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: &fakeStore{
		docs: map[string]*document.Map{
			"team-a/app":        doc(t, `{"state": {"version": "3.0.0", "note": "<script>window.__pwned=1</script>", "attr": "\" onmouseover=\"window.__pwned=2", "list": [1, true, null]}}`),
			"team-b/secret-app": doc(t, `{"state": {"version": "9.9.9-team-b"}}`),
		},
		hist: map[string][]history.Entry{
			"team-a/app": {
				{Time: time.Date(2026, 12, 2, 10, 1, 0, 0, time.UTC), Op: "set", Who: history.Who{Namespace: "team-a", CustomRun: "bump", PipelineRun: "release-1", PipelineTask: "bump"},
					Changes: []history.Change{{Path: "state.version", Old: `"2.9.0"`, New: `"3.0.0"`}}},
				{Time: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), Op: "init", Who: history.Who{Namespace: "team-a", CustomRun: "init"},
					Changes: []history.Change{{Path: "state", New: `{"version":"2.9.0"}`}}},
			},
		},
	}}
	f.kube = fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}},
	)
	f.kube.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		f.reviews.Lock()
		f.reviews.tokens++
		f.reviews.Unlock()
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
		switch tr.Spec.Token {
		case aliceToken:
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "alice", Groups: []string{"release-managers", "system:authenticated"}}}
		case bobToken:
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "bob"}}
		default:
			tr.Status = authnv1.TokenReviewStatus{Authenticated: false, Error: "invalid bearer token"}
		}
		return true, tr, nil
	})
	f.kube.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		f.reviews.Lock()
		f.reviews.access++
		f.reviews.Unlock()
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview)
		ra := sar.Spec.ResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "alice" && ra.Namespace == "team-a" && ra.Verb == "get" && ra.Group == "tekton.dev" && ra.Resource == "customruns"
		return true, sar, nil
	})
	scheme := runtime.NewScheme()
	f.dyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{v1alpha1.ApprovalGatesResource: "ApprovalGateList"},
		gateObject(t, "team-a", "release-1-approve", "team-a/app", v1alpha1.Decision{By: "carol", Via: v1alpha1.ViaKubernetes, Action: "approve", Option: "ship", Message: "<i>green</i>"}),
		gateObject(t, "team-b", "b-approve", "team-b/secret-app"))
	f.srv = New(Options{
		Store:        func() Store { return f.store },
		Kube:         f.kube,
		ViewerClient: func(string) (dynamic.Interface, error) { return f.dyn, nil },
		Exceeded:     func(b string) { f.exceeded = append(f.exceeded, b) },
	})
	f.h = f.srv.Handler()
	return f
}

// get requests path with the token (header) and returns the status and body.
func (f *fixture) get(t *testing.T, token, path string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func (f *fixture) post(t *testing.T, token, path string, form url.Values, header map[string]string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		r.AddCookie(&http.Cookie{Name: CookieName, Value: token})
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func csrfOf(token string) string { return (&Viewer{Token: token}).CSRF() }

// TestUnauthenticated: without a token, or with one the API server refuses,
// every page is the login form with 401 and nothing is read.
func TestUnauthenticated(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/", "/ns/team-a/", "/ns/team-a/contexts/app"} {
		for _, token := range []string{"", "forged-token", "has space"} {
			code, body := f.get(t, token, path)
			if code != http.StatusUnauthorized || !strings.Contains(body, `action="/login"`) {
				t.Errorf("GET %s with token %q: %d, want 401 and the login form:\n%s", path, token, code, body)
			}
			if strings.Contains(body, "3.0.0") {
				t.Errorf("GET %s with token %q shows state", path, token)
			}
		}
	}
	if n := f.store.readsOf("team-a"); n != 0 {
		t.Errorf("%d store reads for unauthenticated requests", n)
	}
	// Positive control: the same pages with alice's token.
	if code, body := f.get(t, aliceToken, "/ns/team-a/contexts/app"); code != http.StatusOK || !strings.Contains(body, "3.0.0") {
		t.Fatalf("alice's context page: %d\n%s", code, body)
	}
}

// TestNamespacesOfTheViewer: the home page lists the namespaces where the
// viewer may get CustomRuns, and no other.
func TestNamespacesOfTheViewer(t *testing.T) {
	f := newFixture(t)
	code, body := f.get(t, aliceToken, "/")
	if code != http.StatusOK || !strings.Contains(body, `href="/ns/team-a/"`) || strings.Contains(body, "team-b") {
		t.Fatalf("alice's home: %d\n%s", code, body)
	}
	if !strings.Contains(body, `id="viewer">alice<`) {
		t.Errorf("the home page does not say who is signed in:\n%s", body)
	}
	code, body = f.get(t, bobToken, "/")
	if code != http.StatusOK || strings.Contains(body, "team-a") || !strings.Contains(body, "no-namespaces") {
		t.Fatalf("bob's home: %d\n%s", code, body)
	}
}

// TestForbiddenNamespaceLeaksNothing: a namespace the viewer may not see is
// 403 with the same page whether it exists (with contexts) or not, for the
// namespace and its contexts alike, and its contexts are never read.
func TestForbiddenNamespaceLeaksNothing(t *testing.T) {
	f := newFixture(t)
	page := func(path string) string {
		code, body := f.get(t, aliceToken, path)
		if code != http.StatusForbidden {
			t.Errorf("GET %s: %d, want 403\n%s", path, code, body)
		}
		if strings.Contains(body, "9.9.9") || strings.Contains(body, "secret-app") && !strings.Contains(path, "secret-app") {
			t.Errorf("GET %s leaks team-b's data:\n%s", path, body)
		}
		return strings.ReplaceAll(body, strings.Split(path, "/")[2], "NS")
	}
	exists, missing := page("/ns/team-b/"), page("/ns/no-such-ns/")
	if exists != missing {
		t.Errorf("an existing forbidden namespace and a missing one read differently:\n%s\n---\n%s", exists, missing)
	}
	if c1, c2 := page("/ns/team-b/contexts/secret-app"), page("/ns/team-b/contexts/no-such-context"); c1 != c2 {
		t.Errorf("an existing forbidden context and a missing one read differently:\n%s\n---\n%s", c1, c2)
	}
	if n := f.store.readsOf("team-b"); n != 0 {
		t.Errorf("team-b's contexts were read %d times", n)
	}
	// Positive control: team-a is shown, and a missing context there is 404.
	if code, body := f.get(t, aliceToken, "/ns/team-a/"); code != http.StatusOK || !strings.Contains(body, `href="/ns/team-a/contexts/app"`) {
		t.Fatalf("team-a: %d\n%s", code, body)
	}
	if code, _ := f.get(t, aliceToken, "/ns/team-a/contexts/nope"); code != http.StatusNotFound {
		t.Errorf("a missing context of an allowed namespace: %d, want 404", code)
	}
}

// TestContextPageEscapesState: a state value and the history entries are
// shown; markup planted in values, titles and messages is text.
func TestContextPageEscapesState(t *testing.T) {
	f := newFixture(t)
	code, body := f.get(t, aliceToken, "/ns/team-a/contexts/app")
	if code != http.StatusOK {
		t.Fatalf("%d\n%s", code, body)
	}
	for _, want := range []string{
		`<span class="key">version</span> <span class="value">3.0.0</span>`, `<details open><summary><span class="key">state</span>`,
		`&lt;script&gt;window.__pwned=1&lt;/script&gt;`,
		`&#34; onmouseover=&#34;window.__pwned=2`,
		`<span class="op">set</span>`, `CustomRun team-a/bump (PipelineRun release-1, task bump)`,
		`<code class="old">&#34;2.9.0&#34;</code>`, `<span class="op">init</span>`,
		`Release &lt;b&gt;3.0.0&lt;/b&gt;?`, `<q>&lt;i&gt;green&lt;/i&gt;</q>`, `Ship it (ship)`, `<dd class="approvals">1/2</dd>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the context page lacks %s", want)
		}
	}
	// A context id is user data too: in the namespace's list it is text, and
	// its link is percent-encoded.
	f.store.docs[`team-a/x"><script>alert(1)</script>?&`] = document.NewMap()
	code, list := f.get(t, aliceToken, "/ns/team-a/")
	if code != http.StatusOK || strings.Contains(list, "<script>") ||
		!strings.Contains(list, `href="/ns/team-a/contexts/x%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E%3F&amp;">x&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;?&amp;</a>`) {
		t.Errorf("a hostile context id in the list: %d\n%s", code, list)
	}
	for _, bad := range []string{"<script>", `" onmouseover="`, "<b>3.0.0</b>", "<i>green</i>"} {
		if strings.Contains(body, bad) {
			t.Errorf("the context page contains the planted markup %s", bad)
		}
	}
}

// TestSecurityHeaders: every page forbids scripts, foreign forms, framing,
// sniffing and caching.
func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/", "/login", "/ns/team-a/contexts/app", "/ns/team-b/"} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Authorization", "Bearer "+aliceToken)
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		h := w.Header()
		csp := h.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s: CSP %q lacks %s", path, csp, d)
			}
		}
		if strings.Contains(csp, "script-src") || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
}

// TestLogin: the form's token is checked with a TokenReview and kept in an
// HttpOnly, SameSite=Strict cookie; a refused token is not kept; a login
// without the form's own CSRF cookie is refused.
func TestLogin(t *testing.T) {
	f := newFixture(t)
	r := httptest.NewRequest(http.MethodGet, "/login", nil)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	var loginCSRF *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == loginCookie {
			loginCSRF = c
		}
	}
	if loginCSRF == nil || !strings.Contains(w.Body.String(), `value="`+loginCSRF.Value+`"`) {
		t.Fatalf("the login form carries no CSRF token: %v\n%s", w.Result().Cookies(), w.Body)
	}
	login := func(token string, withCookie bool) *httptest.ResponseRecorder {
		form := url.Values{"csrf": {loginCSRF.Value}, "token": {"  " + token + "\n"}}
		r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if withCookie {
			r.AddCookie(loginCSRF)
		}
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		return w
	}
	if w := login(aliceToken, false); w.Code != http.StatusForbidden || tokenCookie(w) != nil {
		t.Errorf("a login without the CSRF cookie: %d %v", w.Code, w.Result().Cookies())
	}
	if w := login("forged", true); w.Code != http.StatusUnauthorized || tokenCookie(w) != nil {
		t.Errorf("a refused token: %d %v", w.Code, w.Result().Cookies())
	}
	w = login(aliceToken, true)
	c := tokenCookie(w)
	if w.Code != http.StatusSeeOther || c == nil || c.Value != aliceToken || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("alice's login: %d %+v", w.Code, c)
	}
	r = httptest.NewRequest(http.MethodGet, "/ns/team-a/", nil)
	r.AddCookie(c)
	w = httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "contexts/app") {
		t.Fatalf("with the cookie: %d\n%s", w.Code, w.Body)
	}
}

func tokenCookie(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == CookieName && c.Value != "" {
			return c
		}
	}
	return nil
}

func patches(f *fixture) []string {
	var out []string
	for _, a := range f.dyn.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok {
			out = append(out, string(p.GetPatch()))
		}
	}
	return out
}

// TestDecideNeedsCSRF: a decision without the viewer's CSRF token, with
// another viewer's, or sent by another site is refused and writes nothing.
func TestDecideNeedsCSRF(t *testing.T) {
	f := newFixture(t)
	path := "/ns/team-a/gates/release-1-approve/decide"
	for name, c := range map[string]struct {
		csrf   string
		header map[string]string
	}{
		"no token":          {"", nil},
		"bob's token":       {csrfOf(bobToken), nil},
		"made up":           {"AAAA", nil},
		"from another site": {csrfOf(aliceToken), map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		code, _ := f.post(t, aliceToken, path, url.Values{"csrf": {c.csrf}, "action": {"approve"}, "option": {"ship"}}, c.header)
		if code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, code)
		}
	}
	if p := patches(f); len(p) != 0 {
		t.Fatalf("refused forms patched the gate: %v", p)
	}
	// Positive control: the right token is accepted and writes alice's own entry.
	code, body := f.post(t, aliceToken, path, url.Values{"csrf": {csrfOf(aliceToken)}, "action": {"approve"}, "option": {"ship"}, "message": {"lgtm"}},
		map[string]string{"Sec-Fetch-Site": "same-origin"})
	if code != http.StatusOK || !strings.Contains(body, "decision-accepted") {
		t.Fatalf("alice's approval: %d\n%s", code, body)
	}
	p := patches(f)
	if len(p) != 1 {
		t.Fatalf("patches %v", p)
	}
	var ops []struct {
		Op, Path string
		Value    v1alpha1.Decision
	}
	if err := json.Unmarshal([]byte(p[0]), &ops); err != nil || len(ops) != 1 || ops[0].Op != "add" || ops[0].Path != "/spec/decisions/-" ||
		ops[0].Value.By != "alice" || ops[0].Value.Via != "kubernetes" || ops[0].Value.Option != "ship" || ops[0].Value.Message != "lgtm" {
		t.Fatalf("patch %s (%v)", p[0], err)
	}
}

// TestDecideShowsTheRefusal: what the API server refuses (the admission
// policy) is shown with its message, 403.
func TestDecideShowsTheRefusal(t *testing.T) {
	f := newFixture(t)
	f.dyn.PrependReactor("patch", "approvalgates", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(v1alpha1.ApprovalGatesResource.GroupResource(), "release-1-approve",
			fmt.Errorf("ValidatingAdmissionPolicy 'cicdstatemgr-approvalgates' denied request: bob is not an approver of this gate <script>"))
	})
	code, body := f.post(t, bobToken, "/ns/team-a/gates/release-1-approve/decide",
		url.Values{"csrf": {csrfOf(bobToken)}, "action": {"approve"}, "option": {"ship"}}, nil)
	if code != http.StatusForbidden || !strings.Contains(body, "bob is not an approver of this gate &lt;script&gt;") {
		t.Fatalf("bob's approval: %d\n%s", code, body)
	}
	// An option the gate does not offer is refused before the API server.
	code, _ = f.post(t, aliceToken, "/ns/team-a/gates/release-1-approve/decide",
		url.Values{"csrf": {csrfOf(aliceToken)}, "action": {"approve"}, "option": {"yolo"}}, nil)
	if code != http.StatusBadRequest {
		t.Errorf("an option not offered: %d, want 400", code)
	}
}

// TestPageBounds: a huge context shows MaxTreeNodes nodes and says so; a
// long value is cut with its size; a namespace with many contexts lists
// MaxContexts; a form over MaxFormBytes is 413 and counted.
func TestPageBounds(t *testing.T) {
	f := newFixture(t)
	big := document.NewMap()
	state := document.NewMap()
	for i := range 3 * MaxTreeNodes {
		state.Set(fmt.Sprintf("k%05d", i), i)
	}
	state.Set("long", strings.Repeat("é", 5000))
	big.Set("a-long", strings.Repeat("x", 10000))
	big.Set("state", state)
	f.store.docs["team-a/big"] = big
	for i := range MaxContexts + 50 {
		f.store.docs[fmt.Sprintf("team-a/c%d", i)] = document.NewMap()
	}
	code, body := f.get(t, aliceToken, "/ns/team-a/contexts/big")
	if code != http.StatusOK {
		t.Fatalf("%d", code)
	}
	if n := strings.Count(body, `<span class="key">`); n > MaxTreeNodes+1 {
		t.Errorf("%d nodes shown, at most %d", n, MaxTreeNodes+1)
	}
	if !strings.Contains(body, fmt.Sprintf("… %d more not shown", 3*MaxTreeNodes+1-(MaxTreeNodes-2))) || !strings.Contains(body, "(10000 bytes)") {
		t.Errorf("the page does not say what it left out")
	}
	if strings.Contains(body, strings.Repeat("x", MaxValueBytes+1)) {
		t.Errorf("a value longer than MaxValueBytes is shown whole")
	}
	code, body = f.get(t, aliceToken, "/ns/team-a/")
	if n := strings.Count(body, `<td><a href="/ns/team-a/contexts/`); code != http.StatusOK || n != MaxContexts || !strings.Contains(body, "Only the 200") {
		t.Errorf("namespace page: %d, %d contexts listed, want %d and a hint", code, n, MaxContexts)
	}
	code, _ = f.post(t, aliceToken, "/ns/team-a/gates/release-1-approve/decide",
		url.Values{"csrf": {csrfOf(aliceToken)}, "message": {strings.Repeat("m", MaxFormBytes)}}, nil)
	if code != http.StatusRequestEntityTooLarge || len(f.exceeded) != 1 || f.exceeded[0] != "http_body" {
		t.Errorf("a large form: %d, budgets %v", code, f.exceeded)
	}
}

// TestReviewsAreCached: one TokenReview and one SubjectAccessReview serve
// several page views of a viewer.
func TestReviewsAreCached(t *testing.T) {
	f := newFixture(t)
	for range 5 {
		if code, _ := f.get(t, aliceToken, "/ns/team-a/contexts/app"); code != http.StatusOK {
			t.Fatal(code)
		}
	}
	if f.reviews.tokens != 1 || f.reviews.access != 1 {
		t.Fatalf("%d TokenReviews and %d SubjectAccessReviews for 5 views, want 1 and 1", f.reviews.tokens, f.reviews.access)
	}
}

// TestCacheIsBounded: many distinct keys never grow the cache past its
// bound; an expired entry is not returned.
func TestCacheIsBounded(t *testing.T) {
	c := newTTLCache[bool](time.Minute, 100)
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	for i := range 1000 {
		c.put(fmt.Sprint(i), true)
	}
	if c.len() > 100 {
		t.Fatalf("%d entries, bound 100", c.len())
	}
	c.put("x", true)
	if _, ok := c.get("x"); !ok {
		t.Fatal("a fresh entry is missing")
	}
	now = now.Add(2 * time.Minute)
	if _, ok := c.get("x"); ok {
		t.Fatal("an expired entry was returned")
	}
}

// TestUnknownPathsAre404 and the store missing is 503.
func TestNotReadyAndUnknown(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.get(t, aliceToken, "/etc/passwd"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}
	f.srv.o.Store = func() Store { return nil }
	if code, _ := f.get(t, aliceToken, "/ns/team-a/"); code != http.StatusServiceUnavailable {
		t.Errorf("no store: %d", code)
	}
	r := httptest.NewRequest(http.MethodGet, "/static/style.css", nil)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if b, _ := io.ReadAll(w.Body); w.Code != 200 || !strings.Contains(string(b), "body") || w.Header().Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("stylesheet: %d %v", w.Code, w.Header())
	}
}
