package tmpl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// basics holds testdata/basics.yaml: the basics fixtures' body templates,
// notify capture rules and macros.
type basics struct {
	notify, manualChoice, respond string
	capture                       []*document.Map
	macrosAll                     string
}

func loadBasics(t testing.TB) basics {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "basics.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := document.ParseYAMLMap(data)
	if err != nil {
		t.Fatal(err)
	}
	var b basics
	tpls, _ := doc.GetMap("templates")
	b.notify, _ = tpls.GetString("notify")
	b.manualChoice, _ = tpls.GetString("manual-choice")
	b.respond, _ = tpls.GetString("respond")
	notify, _ := doc.GetMap("notify")
	rules, _ := notify.Get("auto-capture-response-data")
	for _, r := range rules.([]any) {
		b.capture = append(b.capture, r.(*document.Map))
	}
	// jinja2Macros.all as the original builds it: bases first, then the
	// app file; each text stripped, concatenated without separator
	for _, key := range []string{"base1-jinja2-macros", "app-jinja2-macros"} {
		m, _ := doc.GetMap(key)
		m.Range(func(_ string, v any) bool {
			b.macrosAll += strings.TrimSpace(v.(string))
			return true
		})
	}
	if b.notify == "" || b.manualChoice == "" || b.respond == "" || len(b.capture) != 3 || b.macrosAll == "" {
		t.Fatalf("testdata/basics.yaml is incomplete: %+v", b)
	}
	return b
}

// TestFixtureCopiesUpToDate checks testdata/basics.yaml against the shared
// fixtures it was copied from, when they are present.
func TestFixtureCopiesUpToDate(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "fixtures", "basics")
	if _, err := os.Stat(dir); err != nil {
		t.Skip("shared fixtures not present")
	}
	read := func(name string) *document.Map {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		m, err := document.ParseYAMLMap(data)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	data, _ := os.ReadFile(filepath.Join("testdata", "basics.yaml"))
	ours, _ := document.ParseYAMLMap(data)
	cfg, _ := read("config.yaml").GetMap("cicdstatemgr")
	for _, key := range []string{"templates", "notify"} {
		theirs, _ := cfg.Get(key)
		mine, _ := ours.Get(key)
		if !reflect.DeepEqual(theirs, mine) {
			t.Errorf("testdata/basics.yaml %s differs from config.yaml cicdstatemgr.%s", key, key)
		}
	}
	for file, key := range map[string]string{"bases/base1.yaml": "base1-jinja2-macros", "app.yaml": "app-jinja2-macros"} {
		theirs, _ := read(file).Get("jinja2-macros")
		mine, _ := ours.Get(key)
		if !reflect.DeepEqual(theirs, mine) {
			t.Errorf("testdata/basics.yaml %s differs from %s jinja2-macros", key, file)
		}
	}
}

var randomID = regexp.MustCompile(`^[1-9][0-9]{4}$`)

func TestFixtureNotify(t *testing.T) {
	b := loadBasics(t)
	env := New(Options{})
	cases := []struct {
		name, message, wantMessage string
	}{
		{"macro message", "{{ basicMacro('build is successful') }}\n", "This is basicMacro! msg = build is successful"},
		{"embedded JSON", "Here is some JSON from c:\\windowspath\\test and \"quotes\" { \"dog\":\"beagle\" }\n",
			"Here is some JSON from c:\\windowspath\\test and \"quotes\" { \"dog\":\"beagle\" }"},
		{"multi-line non-ASCII", "  line 1 é\nline 2 😀\ttab\n\n", "line 1 é\nline 2 😀\ttab\n"},
		{"echo and helloWorld", "{{ echo('blah') }} / {{ helloWorld(channel) }}", "blah / Hello world msg = stage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := withMacros(ctxYAML(t, "channel: stage\nstate: {cicdContextDataId: x}\n"), b.macrosAll)
			// the notify handler: render the message, then the body with it
			msg, err := env.Render(tc.message, ctx)
			if err != nil {
				t.Fatal(err)
			}
			if msg != tc.wantMessage {
				t.Fatalf("message = %q, want %q", msg, tc.wantMessage)
			}
			notify := document.NewMap()
			notify.Set("message", msg)
			ctx.Set("notify", notify)
			body, err := env.Render(b.notify, ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got struct{ Channel, Message, RandomID string }
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("notify body is not JSON: %v\n%s", err, body)
			}
			if got.Channel != "stage" || got.Message != tc.wantMessage || !randomID.MatchString(got.RandomID) {
				t.Fatalf("notify body = %+v\n%s", got, body)
			}
			if strings.HasPrefix(body, " ") || strings.HasSuffix(body, "\n") {
				t.Errorf("body %q: leading whitespace and the trailing newline must go", body)
			}
		})
	}
}

func TestFixtureManualChoice(t *testing.T) {
	b := loadBasics(t)
	env := New(Options{})
	ctx := withMacros(ctxYAML(t, `
channel: stage
manualChoice:
  title: here are my choices
  choices:
    choiceGroup2:
      header: "Choice group two blah:"
      options:
        - {text: curl/8, value: curl/8}
    choiceGroup1:
      header: "Choice group one:"
      options:
        - {text: Choice 1, value: c1}
        - {text: Choice 2, value: c2, style: primary}
    choiceGroup3:
      header: "no options"
      options: []
`), b.macrosAll)
	body, err := env.Render(b.manualChoice, ctx)
	if err != nil {
		t.Fatal(err)
	}
	type option struct{ Value, Text string }
	var got struct {
		Channel  string
		RandomID string
		Choices  []struct {
			Header  string
			Options []option
		}
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("manual-choice body is not JSON: %v\n%s", err, body)
	}
	if got.Channel != "stage" || !randomID.MatchString(got.RandomID) || len(got.Choices) != 3 {
		t.Fatalf("body = %+v", got)
	}
	// `sorted`: choiceGroup1, choiceGroup2, choiceGroup3
	wantHeaders := []string{"Choice group one:", "Choice group two blah:", "no options"}
	wantOptions := [][]option{{{"c1", "Choice 1"}, {"c2", "Choice 2"}}, {{"curl/8", "curl/8"}}, nil}
	for i, c := range got.Choices {
		sameOptions := reflect.DeepEqual(c.Options, wantOptions[i]) || len(c.Options)+len(wantOptions[i]) == 0
		if c.Header != wantHeaders[i] || !sameOptions {
			t.Errorf("choice %d = %+v, want header %q options %+v", i, c, wantHeaders[i], wantOptions[i])
		}
	}
}

func TestFixtureCaptureRules(t *testing.T) {
	b := loadBasics(t)
	env := New(Options{})
	reply := `{"data": {"channel": "stage", "message": "This is basicMacro! msg = x", "randomId": "12345"},
	           "headers": {"user-agent": "python-requests/2.25"}, "url": "http://127.0.0.1:18080/post"}`
	cases := []struct {
		name  string
		reply string
		want  [][2]string // from, to per rule ("" from: "to" is not rendered)
	}{
		{"full reply", reply, [][2]string{
			{"This is basicMacro! msg = x", "state.postedData.12345.body.message"},
			{"python-requests/2.25", "state.postedData.12345.headers.userAgent"},
			{"12345", "state.lastPostedDataRandomId"},
		}},
		{"reply without data or headers", `{"other": 1}`, [][2]string{
			{"", ""},
			{"", ""},
			{"", ""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parsed, err := document.ParseJSON([]byte(tc.reply))
			if err != nil {
				t.Fatal(err)
			}
			ctx := withMacros(ctxYAML(t, "state: {}\n"), b.macrosAll)
			ctx.Set("body", parsed)
			for i, rule := range b.capture {
				from, _ := rule.GetString("from")
				to, _ := rule.GetString("to")
				gotFrom, err := env.Render(from, ctx)
				if err != nil {
					t.Fatalf("rule %d from: %v", i, err)
				}
				gotTo := ""
				if strings.TrimSpace(gotFrom) != "" {
					if gotTo, err = env.Render(to, ctx); err != nil {
						t.Fatalf("rule %d to: %v", i, err)
					}
				} else if _, err := env.Render(to, ctx); i < 2 && err == nil {
					// as in jinja2: body.data.randomId with no body.data fails
					t.Errorf("rule %d: rendering %q without body.data should fail", i, to)
				}
				if strings.TrimSpace(gotFrom) != tc.want[i][0] || gotTo != tc.want[i][1] {
					t.Errorf("rule %d = (%q, %q), want %q", i, gotFrom, gotTo, tc.want[i])
				}
			}
			// testNotifyEvent's capture of the whole reply, then the respond
			// url and set-values templates reading it back
			captured, err := env.Render("{{ body|tojson }}", ctx)
			if err != nil {
				t.Fatal(err)
			}
			state, _ := ctx.GetMap("state")
			state.Set("lastPostedHttpResponse", captured)
			url, err := env.Render("{% with r=state.lastPostedHttpResponse|from_json %}{{ r.url }}{% endwith %}", ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantURL := ""
			if strings.Contains(tc.reply, `"url"`) {
				wantURL = "http://127.0.0.1:18080/post"
			}
			if url != wantURL {
				t.Errorf("respond url = %q, want %q", url, wantURL)
			}
		})
	}
}

func TestFixtureRespond(t *testing.T) {
	b := loadBasics(t)
	ctx := withMacros(ctxYAML(t, "respond: {message: dummy responder message for 12345, someArbitraryKey: lastPostedDataRandomId=12345}\n"), b.macrosAll)
	body, err := New(Options{}).Render(b.respond, ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("respond body is not JSON: %v\n%s", err, body)
	}
	if got["response_text"] != "dummy responder message for 12345" || got["someArbitraryKey"] != "lastPostedDataRandomId=12345" {
		t.Fatalf("respond body = %v", got)
	}
}
