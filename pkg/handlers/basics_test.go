package handlers_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
)

var ua = httpclient.UserAgent()

func wantSlackHeaders(t *testing.T, r request) {
	t.Helper()
	want := map[string]string{
		"Content-Type":  "application/json; charset=UTF-8",
		"Accept":        "*/*",
		"Authorization": "Bearer FAKE_TOKEN",
		"Cache-Control": "no-cache",
		"User-Agent":    ua,
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if r.Method != "POST" || r.Path != "/post" {
		t.Errorf("request %s %s, want POST /post", r.Method, r.Path)
	}
}

func match(t *testing.T, re, s string) []string {
	t.Helper()
	m := regexp.MustCompile(`^(?:` + re + `)$`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%q does not match %s", s, re)
	}
	return m
}

func wantEq(t *testing.T, what string, got, want any) {
	t.Helper()
	if document.MustJSON(got, document.JSONStyle{}) != document.MustJSON(want, document.JSONStyle{}) {
		t.Errorf("%s = %s, want %s", what, document.MustJSON(got, document.JSONStyle{}), document.MustJSON(want, document.JSONStyle{}))
	}
}

// TestBasics replays the handle-event steps of the basics acceptance cases
// (load.set-and-notify .. disabled-handler) and checks the exact requests and
// the document after each.
func TestBasics(t *testing.T) {
	e := newEnv(t, nil)
	e.init("", set("state.key1", "value1"))

	// load.set-and-notify: notify + global capture rules
	handled := e.mustHandle("build=testEvent", set("state.key1", "valuechanged"),
		set("state.testHeader2Value", "myvalueforheader2"), set("state.triggerAutoArg1", "99999"))
	wantEq(t, "handled", handled, `[{"type":"notify","name":"default","status":"sent","code":200}]`)
	reqs := e.ep.take()
	wantRequests(t, reqs, 1)
	wantSlackHeaders(t, reqs[0])
	rid := match(t, `\{ "channel": "stage", "message": "This is basicMacro! msg = testEventFired!!! yes\.\.\.", "randomId": "([1-9][0-9]{4})" \}`, reqs[0].Body)[1]
	wantEq(t, "lastPostedDataRandomId", e.get("state.lastPostedDataRandomId"), rid)
	wantEq(t, "posted message", e.get("state.postedData."+rid+".body.message"), "This is basicMacro! msg = testEventFired!!! yes...")
	wantEq(t, "user agent", e.get("state.postedData."+rid+".headers.userAgent"), ua)
	wantEq(t, "key1", e.get("state.key1"), "valuechanged")

	// notify.capture: handler capture rules after the global ones
	e.mustHandle("build=testNotifyEvent")
	reqs = e.ep.take()
	wantRequests(t, reqs, 1)
	wantSlackHeaders(t, reqs[0])
	rid = match(t, `\{ "channel": "stage", "message": "This is basicMacro! msg = build is successful", "randomId": "([1-9][0-9]{4})" \}`, reqs[0].Body)[1]
	wantEq(t, "lastPostedDataRandomId", e.get("state.lastPostedDataRandomId"), rid)
	wantEq(t, "lastPostedToNotifyChannel", e.get("state.lastPostedToNotifyChannel"), "stage")
	resp, _ := e.get("state.lastPostedHttpResponse").(string)
	match(t, `\{"args": \{\}, "data": \{"channel": "stage", "message": "This is basicMacro! msg = build is successful", "randomId": "[0-9]+"\}, "files": \{\}, "form": \{\}, "headers": \{.*\}, "json": \{.*\}, "url": "`+regexp.QuoteMeta(e.ep.URL)+`/post"\}`, resp)
	// the echoed bearer token is a secret: redacted in the captured value
	if strings.Contains(resp, "FAKE_TOKEN") || !strings.Contains(resp, `"authorization": "Bearer [REDACTED]"`) {
		t.Errorf("captured reply leaks or lost the redacted token: %s", resp)
	}

	// notify.embedded-json
	e.mustHandle("build=testEmbeddedJsonEvent")
	reqs = e.ep.take()
	wantRequests(t, reqs, 1)
	rid = match(t, `\{ "channel": "stage", "message": "Here is some JSON from c:\\\\windowspath\\\\test and \\"quotes\\" \{ \\"dog\\":\\"beagle\\" \}", "randomId": "([1-9][0-9]{4})" \}`, reqs[0].Body)[1]
	wantEq(t, "embedded message", e.get("state.postedData."+rid+".body.message"), `Here is some JSON from c:\windowspath\test and "quotes" { "dog":"beagle" }`)

	// trigger-pipeline: payload key order auto-args then args, Python layout
	handled = e.mustHandle("build=testTriggerPipelineEvent", set("state.triggerAutoArg1", "dummyVal"))
	wantEq(t, "handled", handled, `[{"type":"trigger-pipeline","name":"default","status":"sent","code":200}]`)
	reqs = e.ep.take()
	wantRequests(t, reqs, 1)
	match(t, `\{"autoArg1": "dummyVal", "randomId": "[1-9][0-9]{4}", "triggerPipelineName": "build", "whatever": "`+regexp.QuoteMeta(ua)+`"\}`, reqs[0].Body)
	h := reqs[0].Header
	for k, v := range map[string]string{"Content-Type": "application/json", "Accept": "*/*", "Cache-Control": "no-cache",
		"Test-Header-1": "mySecretValue", "Test-Header-2": "myvalueforheader2", "User-Agent": ua} {
		if h.Get(k) != v {
			t.Errorf("trigger header %s = %q, want %q", k, h.Get(k), v)
		}
	}
	match(t, `[1-9][0-9]{4}`, h.Get("Random-Header"))
	if h.Get("Authorization") != "" {
		t.Errorf("trigger sent an Authorization header")
	}

	// manual-choice: second-pass rendering of header / option value and text
	e.mustHandle("build=testManualChoiceEvent")
	reqs = e.ep.take()
	wantRequests(t, reqs, 1)
	wantSlackHeaders(t, reqs[0])
	got := compactJSON(t, reqs[0].Body)
	match(t, regexp.QuoteMeta(`{"channel":"stage","randomId":"`)+`[1-9][0-9]{4}`+regexp.QuoteMeta(`","choices":[`+
		`{"header":"Choice group one:","options":[{"value":"c1","text":"Choice 1"},{"value":"c2","text":"Choice 2"}]},`+
		`{"header":"Choice group two blah:","options":[{"value":"`+ua+`","text":"`+ua+`"}]}]}`), got)

	// manual-choice.generators
	items, err := document.ParseJSON([]byte(readTestdata(t, "set.manual-choice-gen-data.json")))
	if err != nil {
		t.Fatal(err)
	}
	e.mustHandle("test2=blah-event", set("state.choiceGeneratorItems", items))
	reqs = e.ep.take()
	wantRequests(t, reqs, 1)
	wantSlackHeaders(t, reqs[0])
	got = compactJSON(t, reqs[0].Body)
	gen := func(n, d string) string {
		o := `{"value":"` + n + ` ` + d + `","text":"` + n + `"}`
		return `{"header":"` + n + `","options":[` + o + `,` + o + `]}`
	}
	match(t, regexp.QuoteMeta(`{"channel":"stage","randomId":"`)+`[1-9][0-9]{4}`+regexp.QuoteMeta(`","choices":[`+
		`{"header":"Choice group one:","options":[{"value":"c1","text":"Choice 1"},{"value":"c2","text":"Choice 2"}]},`+
		gen("item-one", "item1 desc")+","+gen("item-two", "item2 desc")+","+gen("item-three", "item3 desc")+`]}`), got)
	captured, _ := e.get("state.lastPostedHttpResponseFromManualChoice").(string)
	cv, err := document.ParseJSON([]byte(captured))
	if err != nil {
		t.Fatalf("captured manual-choice reply is not JSON: %v: %s", err, captured)
	}
	v, _, _ := document.Lookup(cv, "data.choices[3].options[0].value")
	wantEq(t, "captured choice", v, "item-three item3 desc")
	v, _, _ = document.Lookup(cv, "url")
	wantEq(t, "captured url", v, e.ep.URL+"/post")

	// set-values: no HTTP
	handled = e.mustHandle("build=testSetValuesEvent")
	wantEq(t, "handled", handled, `[{"type":"set-values","name":"extractLastPostedNotifyMessage","status":"applied"}]`)
	wantRequests(t, e.ep.take(), 0)
	wantEq(t, "lastPostedNotifyMessage", e.get("state.lastPostedNotifyMessage"), "This is basicMacro! msg = build is successful")

	// respond: url from the captured reply, extra keys rendered
	rid, _ = e.get("state.lastPostedDataRandomId").(string)
	e.mustHandle("build=testRespondEvent")
	reqs = e.ep.take()
	wantRequests(t, reqs, 1)
	wantSlackHeaders(t, reqs[0])
	wantEq(t, "respond body", reqs[0].Body, "{\n  \"response_text\": \"dummy responder message for "+rid+
		"\",\n  \"someArbitraryKey\":\"lastPostedDataRandomId="+rid+"\"\n}")

	// disabled-handler
	handled = e.mustHandle("test=another-event")
	wantEq(t, "handled", handled, `[{"type":"notify","name":"default","status":"disabled"}]`)
	wantRequests(t, e.ep.take(), 0)
	if !strings.Contains(e.logs.String(), "notify enabled:False skipping....") {
		t.Errorf("no 'notify enabled:False skipping....' log line:\n%s", e.logs.String())
	}
	if strings.Contains(e.logs.String(), "FAKE_TOKEN") || strings.Contains(e.logs.String(), "mySecretValue") {
		t.Errorf("a secret reached the logs:\n%s", e.logs.String())
	}
}

// TestChoiceGeneratorsReadInMemoryDocument: during init (document not yet
// stored) the generators see the values set by the same call (original bug 10).
func TestChoiceGeneratorsReadInMemoryDocument(t *testing.T) {
	e := newEnv(t, nil)
	items, err := document.ParseJSON([]byte(readTestdata(t, "set.manual-choice-gen-data.json")))
	if err != nil {
		t.Fatal(err)
	}
	e.init("", set("state.choiceGeneratorItems", items))
	e.ep.take()
	// a fresh id: init with the event in one call
	e.id = "context-data-id-2"
	ev := "test2=blah-event"
	out, err := e.eng.Do(e.ctx(), initRequest(e, ev, set("state.choiceGeneratorItems", items)))
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, "handled", out.Handled, `[{"type":"manual-choice","name":"default","status":"sent","code":200}]`)
	reqs := e.ep.take()
	wantRequests(t, reqs, 1)
	if c := strings.Count(reqs[0].Body, `"header"`); c != 4 {
		t.Errorf("%d choice groups posted, want 4: %s", c, reqs[0].Body)
	}
	if e.get("state.lastPostedHttpResponseFromManualChoice") == nil {
		t.Errorf("capture during init did not reach the stored document")
	}
}
