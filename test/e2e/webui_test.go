package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/apis/cicdstatemgr/v1alpha1"
)

// The web page (pkg/webui, docs/webui.md) driven by a real headless Chromium
// (Debian's chromium, hack/deps.sh) against the controller of the stack,
// which serves it on CICDSTATEMGR_UI_URL under its own ServiceAccount.

// chromiumPath is Debian's chromium; the test fails without it.
const chromiumPath = "/usr/bin/chromium"

// Planted in state values: markup that would run or break out of an
// attribute if it were not escaped.
const (
	plantedScript = `<script>window.__pwned=1</script>`
	plantedAttr   = `" autofocus onfocus="window.__pwned=2" x="`
)

// uiURL is the page's address, from the stack's env file.
func uiURL(t *testing.T) string {
	t.Helper()
	env, err := readEnv(filepath.Join(stackEnv["CLUSTER_DIR"], "stack.env"))
	if err != nil || env["CICDSTATEMGR_UI_URL"] == "" {
		t.Fatalf("the stack names no web page (CICDSTATEMGR_UI_URL): %v", err)
	}
	return env["CICDSTATEMGR_UI_URL"]
}

// artifactsDir is where screenshots go (git-ignored).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(root, ".cache", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newBrowser starts headless Chromium for the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("Debian's chromium is needed (hack/deps.sh installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	return browser
}

// session is one viewer's incognito browser context (its own cookies).
type session struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func newSession(t *testing.T, browser context.Context, base string) *session {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// the first call opens the tab: without a deadline, which would close it
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a browser context: %v", err)
	}
	return &session{t: t, ctx: ctx, base: base}
}

// run runs steps with a deadline.
func (s *session) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
}

// value runs one action that returns a value, with a deadline.
func value[T any](s *session, what string, a chromedp.Action[T]) T {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// open navigates to path and returns the HTTP status and the text of the page.
func (s *session) open(path string) (int, string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(s.base+path))
	if err != nil {
		s.t.Fatalf("opening %s: %v", path, err)
	}
	return int(resp.Status), s.text()
}

func (s *session) text() string {
	s.t.Helper()
	return value(s, "reading the page", chromedp.Text(chromedp.CSS("body")))
}

// login pastes token into the login form.
func (s *session) login(token string) string {
	s.t.Helper()
	s.open("/login")
	s.run("logging in", chromedp.SetValue(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("login")), chromedp.WaitVisible(chromedp.ID("viewer")))
	return s.text()
}

// screenshot saves the page as .cache/artifacts/webui-<name>.png.
func (s *session) screenshot(name string) string {
	s.t.Helper()
	png := value(s, "screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(artifactsDir(s.t), "webui-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("screenshot: %s", path)
	return path
}

// TestWebUI: a viewer whose token may get CustomRuns in namespace A only logs
// in through the page's form; A's context is listed and B's is not, and B's
// pages are refused (the attack) beside A's (the control); the context page
// shows a state value, its history and its pending gate with options and
// approvals so far; markup planted in state values is shown as text and never
// runs; a ServiceAccount the gate does not name is refused by the admission
// policy from the page, and the named approver's decision from the page
// decides the gate.
func TestWebUI(t *testing.T) {
	startFakeSlackAPI(t)
	base := uiURL(t)
	a, b := namespace(t, "webui-a"), namespace(t, "webui-b")
	approver := "system:serviceaccount:" + a + ":viewer"
	kubectl(t, approvalPipeline("", "    - {name: approvers, value: ["+approver+"]}\n", ""), "-n", a, "apply", "-f", "-")
	for _, sa := range []string{"viewer", "intruder"} {
		kubectl(t, "", "-n", a, "create", "serviceaccount", sa)
		kubectl(t, "", "-n", a, "create", "rolebinding", sa+"-viewer", "--clusterrole=cicdstatemgr-viewer", "--serviceaccount="+a+":"+sa)
		kubectl(t, "", "-n", a, "create", "rolebinding", sa+"-approver", "--clusterrole=cicdstatemgr-approver", "--serviceaccount="+a+":"+sa)
	}
	ctxA, ctxB := "release-ctx", "b-secret-ctx"
	kubectl(t, pipelineRun("release-1", "release", map[string]string{"id": ctxA}), "-n", a, "create", "-f", "-")
	waitCustomRunReason(t, a, "tekton.dev/pipelineTask=approve", "WaitingForDecision", 60*time.Second)
	gateName := customRunOf(t, a, "release-1", "approve").Name
	waitGate(t, a, gateName, "Pending", func(g *v1alpha1.ApprovalGate) bool { return g.Status.Outcome.State == v1alpha1.StatePending })
	if cr := runOne(t, a, customRun("plant", "webui", time.Minute, strParam("op", "set"), strParam("id", ctxA),
		arrParam("set", "state.note="+plantedScript, "state.attr="+plantedAttr)), time.Minute); !cr.IsSuccessful() {
		t.Fatalf("planting values in %s: %v", ctxA, cr.Status.Conditions)
	}
	if cr := runOne(t, b, customRun("init", "webui", time.Minute, strParam("op", "init"), strParam("id", ctxB),
		strParam("app-config", "cicd-contexts: {stage: {channel: b}}"), arrParam("set", "state.secret=only-for-b")), time.Minute); !cr.IsSuccessful() {
		t.Fatalf("init in %s: %v", b, cr.Status.Conditions)
	}
	viewerToken := strings.TrimSpace(kubectl(t, "", "-n", a, "create", "token", "viewer", "--duration=1h"))
	intruderToken := strings.TrimSpace(kubectl(t, "", "-n", a, "create", "token", "intruder", "--duration=1h"))

	// Behind an auth proxy (the token in the Authorization header): A's
	// namespace is served, B's refused, and without a token nothing.
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/ns/" + a + "/", viewerToken, http.StatusOK},
		{"/ns/" + b + "/", viewerToken, http.StatusForbidden},
		{"/ns/" + b + "/contexts/" + ctxB, viewerToken, http.StatusForbidden},
		{"/ns/" + a + "/", "", http.StatusUnauthorized},
		{"/ns/" + a + "/", "not-a-token", http.StatusUnauthorized},
	} {
		code, body := httpGet(t, base+c.path, c.token)
		if code != c.want || strings.Contains(body, "only-for-b") {
			t.Errorf("GET %s (token %v): %d, want %d\n%s", c.path, c.token != "", code, c.want, body)
		}
	}

	browser := newBrowser(t)
	viewer := newSession(t, browser, base)
	home := viewer.login(viewerToken)
	if !strings.Contains(home, a) || strings.Contains(home, b) || !strings.Contains(home, approver) {
		t.Fatalf("the viewer's home page should list %s and not %s, as %s:\n%s", a, b, approver, home)
	}
	code, page := viewer.open("/ns/" + a + "/")
	if code != http.StatusOK || !strings.Contains(page, ctxA) || strings.Contains(page, ctxB) || !strings.Contains(page, "Release 3.0.0?") {
		t.Fatalf("namespace %s: %d\n%s", a, code, page)
	}
	// The attack: B's namespace and context by URL.
	for _, path := range []string{"/ns/" + b + "/", "/ns/" + b + "/contexts/" + ctxB} {
		code, page := viewer.open(path)
		if code != http.StatusForbidden || !strings.Contains(page, "Not allowed") || strings.Contains(page, "only-for-b") {
			t.Errorf("%s by URL: %d\n%s", path, code, page)
		}
	}

	code, page = viewer.open("/ns/" + a + "/contexts/" + ctxA)
	if code != http.StatusOK {
		t.Fatalf("context page: %d\n%s", code, page)
	}
	for _, want := range []string{"version 3.0.0", plantedScript, plantedAttr, "init", "set", "state.note",
		"Release 3.0.0?", "Ship it (ship)", "Hold (hold)", "0/1", "None yet", "Approve"} {
		if !strings.Contains(page, want) {
			t.Errorf("the context page does not show %q:\n%s", want, page)
		}
	}
	pwned := value(viewer, "probing window.__pwned", chromedp.Evaluate[string](`typeof window.__pwned`))
	scripts := value(viewer, "counting scripts", chromedp.Evaluate[int](`document.querySelectorAll("script, [onfocus], [onmouseover]").length`))
	if pwned != "undefined" || scripts != 0 {
		t.Fatalf("planted markup ran or became elements: window.__pwned is %s, %d script or handler elements", pwned, scripts)
	}
	shot := viewer.screenshot("context")

	// A ServiceAccount the gate does not name: RBAC lets it patch, the
	// admission policy refuses, and the page says so.
	intruder := newSession(t, browser, base)
	intruder.login(intruderToken)
	intruder.open("/ns/" + a + "/contexts/" + ctxA)
	intruder.run("the intruder approves", chromedp.Click(chromedp.CSS(`#gate-`+gateName+` button.approve`)),
		chromedp.WaitVisible(chromedp.ID("decision-refused")))
	if page := intruder.text(); !strings.Contains(page, "system:serviceaccount:"+a+":intruder is not an approver") {
		t.Errorf("the refusal is not the admission policy's:\n%s", page)
	}
	intruder.screenshot("refused")
	if g := getGate(t, a, gateName); len(g.Spec.Decisions) != 0 {
		t.Fatalf("the intruder's decision was recorded: %+v", g.Spec.Decisions)
	}

	// The named approver decides from the page.
	viewer.run("the approver approves", chromedp.SetValue(chromedp.CSS(`#gate-`+gateName+` input[name=message]`), "looks good"),
		chromedp.Click(chromedp.CSS(`#gate-`+gateName+` button.approve`)),
		chromedp.WaitVisible(chromedp.ID("decision-accepted")))
	pr := waitPipelineRun(t, a, "release-1", 60*time.Second)
	succeeded(t, pr)
	if res := prResults(pr); res["choice"] != "ship" || res["chosen-by"] != approver {
		t.Errorf("results %v, want ship by %s", res, approver)
	}
	// The history shows the decision, and the gate its outcome.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, page = viewer.open("/ns/" + a + "/contexts/" + ctxA)
		if strings.Contains(page, "Approved") && strings.Contains(page, "looks good") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the context page does not show the decided gate:\n%s", page)
		}
		time.Sleep(500 * time.Millisecond)
	}
	viewer.screenshot("decided")
	t.Logf("README screenshot candidate: %s", shot)
}

// httpGet gets url with token as a bearer token (as an auth proxy sends it).
func httpGet(t *testing.T, u, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}
