package handlers_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// run calls the runner directly on a copy of the stored document.
func (e *env) run(event, journalKey string) (*document.Map, string, error) {
	e.t.Helper()
	ev, err := engine.ParseEvent(event)
	if err != nil {
		e.t.Fatal(err)
	}
	doc := e.doc()
	handled, err := e.runner.HandleEvent(e.ctx(), engine.EventInput{
		ID: e.id, Doc: doc, Config: e.cfg, Pipeline: ev.Pipeline, Event: ev.Name, JournalKey: journalKey,
	})
	return doc, handled, err
}

// adminOnlyHeaders makes the basics trigger.headers render in the
// controller, where they see configData and secretData only.
func adminOnlyHeaders(c string) string {
	c = strings.Replace(c, `value: "{{state.testHeader2Value}}"`, `value: "{{ configData.trigger.url }}"`, 1)
	return strings.Replace(c, `value: "{{random()}}"`, `value: "fixed"`, 1)
}

func TestSameJournalKeySendsOnceAndReplays(t *testing.T) {
	e := newEnv(t, adminOnlyHeaders)
	e.init("")
	e.mustHandle("build=testEvent") // stores the captures the trigger and manual-choice templates read
	e.ep.take()
	for _, event := range []string{"build=testNotifyEvent", "build=testTriggerPipelineEvent", "build=testManualChoiceEvent"} {
		typ := map[string]string{"build=testNotifyEvent": "notify", "build=testTriggerPipelineEvent": "trigger-pipeline",
			"build=testManualChoiceEvent": "manual-choice"}[event]
		d1, h1, err := e.run(event, "run-uid-1")
		if err != nil {
			t.Fatal(err)
		}
		d2, h2, err := e.run(event, "run-uid-1")
		if err != nil {
			t.Fatal(err)
		}
		wantRequests(t, e.ep.take(), 1)
		wantEq(t, event+" first", h1, `[{"type":"`+typ+`","name":"default","status":"sent","code":200}]`)
		wantEq(t, event+" second", h2, `[{"type":"`+typ+`","name":"default","status":"replayed","code":200}]`)
		j1, j2 := document.MustJSON(d1, document.JSONStyle{}), document.MustJSON(d2, document.JSONStyle{})
		if j1 != j2 {
			t.Errorf("%s: the replay captured differently:\n%s\n%s", event, j1, j2)
		}
		// another journal key sends again
		if _, _, err := e.run(event, "run-uid-2"); err != nil {
			t.Fatal(err)
		}
		wantRequests(t, e.ep.take(), 1)
	}
	// the notify capture happened in both runs
	d, _, _ := e.run("build=testNotifyEvent", "run-uid-1")
	if v, _, _ := document.Lookup(d, "state.lastPostedToNotifyChannel"); v != "stage" {
		t.Errorf("replayed capture missing: %v", v)
	}
	wantRequests(t, e.ep.take(), 0)
}

func TestIntentWithoutOutcomeIsNotResent(t *testing.T) {
	e := newEnv(t, nil)
	e.init("")
	key := handlers.JournalKey("run-uid-1", "build", "testNotifyEvent", "notify", "default")
	if err := e.st.SetOpResult(e.ctx(), key, []byte(`{"state":"intent","nonce":"a-dead-process"}`)); err != nil {
		t.Fatal(err)
	}
	before := document.MustJSON(e.doc(), document.JSONStyle{})
	d, handled, err := e.run("build=testNotifyEvent", "run-uid-1")
	if err != nil {
		t.Fatal(err)
	}
	wantRequests(t, e.ep.take(), 0)
	wantEq(t, "handled", handled, `[{"type":"notify","name":"default","status":"unknown"}]`)
	if after := document.MustJSON(d, document.JSONStyle{}); after != before {
		t.Errorf("an unknown outcome was captured")
	}
	if !strings.Contains(e.logs.String(), "not sending again") {
		t.Errorf("no warning logged")
	}
}

func TestOutcomeRecordedAndFailureReleased(t *testing.T) {
	e := newEnv(t, nil)
	e.init("")
	e.ep.setReply(status(http.StatusBadRequest, "bad"))
	if _, _, err := e.run("build=testEvent", "run-uid-1"); err == nil {
		t.Fatal("no error for a 400")
	}
	key := handlers.JournalKey("run-uid-1", "build", "testEvent", "notify", "default")
	if _, found, err := e.st.OpResult(e.ctx(), key); err != nil || found {
		t.Fatalf("a failed request left a journal record (found %v, err %v)", found, err)
	}
	e.ep.setReply(nil)
	if _, _, err := e.run("build=testEvent", "run-uid-1"); err != nil {
		t.Fatal(err)
	}
	wantRequests(t, e.ep.take(), 2)
	raw, found, err := e.st.OpResult(e.ctx(), key)
	if err != nil || !found {
		t.Fatalf("no outcome recorded (err %v)", err)
	}
	var rec struct {
		State string `json:"state"`
		Code  int    `json:"code"`
		Body  string `json:"body"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.State != "outcome" || rec.Code != 200 || !strings.Contains(rec.Body, `"url"`) {
		t.Errorf("record %s", raw)
	}
	if strings.Contains(rec.Body, "FAKE_TOKEN") {
		t.Errorf("the journal keeps a secret: %s", rec.Body)
	}
}

// TestWriteConflictReplays: a concurrent write while the handler's request
// is in flight makes the engine run the operation again; the request is not
// sent twice and the capture of the re-run equals the first one.
func TestWriteConflictReplays(t *testing.T) {
	e := newEnv(t, nil)
	e.init("")
	e.ep.setReply(func(n int, _ http.ResponseWriter, _ *http.Request) bool {
		if n == 0 {
			_, _, err := e.st.Update(e.ctx(), store.Ref("ns", e.id), "", func(doc *document.Map) (bool, []byte, error) {
				return true, nil, document.SetPath(doc, "state.concurrent", "yes")
			})
			if err != nil {
				t.Errorf("concurrent update: %v", err)
			}
		}
		return false
	})
	handled := e.mustHandle("build=testNotifyEvent")
	reqs := e.ep.take()
	wantRequests(t, reqs, 1)
	wantEq(t, "handled", handled, `[{"type":"notify","name":"default","status":"replayed","code":200}]`)
	wantEq(t, "concurrent write kept", e.get("state.concurrent"), "yes")
	rid := match(t, `.*"randomId": "([0-9]+)".*`, reqs[0].Body)[1]
	wantEq(t, "captured id is the sent one", e.get("state.lastPostedDataRandomId"), rid)
}
