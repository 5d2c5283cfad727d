package cli_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/cli"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

const gateApp = `cicd-contexts:
  stage:
    pipelines:
      rel:
        event-handlers:
          approve:
            manual-choice:
              title: go?
              wait: true
              choices:
                c: {header: h, options: [{text: Ship, value: ship}, {text: Stop, value: stop}]}
`

// TestHandleEventWaitsOnAGate: like the controller, the CLI's
// --handle-event waits at a manual-choice gate until someone decides (or
// --timeout), then records the decision.
func TestHandleEventWaitsOnAGate(t *testing.T) {
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"ok": true, "channel": "C9", "ts": "9.9"}`)
	}))
	defer slack.Close()
	srv := redistest.Start(t)
	e := newEnv(t, srv.Addr)
	write(t, e.dir, "config.yaml", fmt.Sprintf(`cicdstatemgr:
  datasources:
    redis: {host: 127.0.0.1, port: %d, isPrimary: true}
  slack: {url: %q}
  templates: {manual-choice: '{"text": "{{ manualChoice.title }}"}'}
`, srv.Port, slack.URL))
	write(t, e.dir, "secrets.yaml", "cicdstatemgr:\n  slack: {token: t}\n  datasources:\n    redis: {username: cicdstatemgr, password: \"123$aBcZ\"}\n")
	write(t, e.dir, "app.yaml", gateApp)
	old := cli.EventRunnerFactory
	cli.EventRunnerFactory = func(st *store.Store, r *tmpl.Env, log *slog.Logger) engine.EventRunner {
		return handlers.NewRunner(st, r, log, handlers.WithGates(gate.New(st)), handlers.WithDocumentInHeaders())
	}
	defer func() { cli.EventRunnerFactory = old }()
	e.mustRun("--init-new", "g1", "--init-app-config-file", "app.yaml", "--set", "state.a=1")

	st, err := store.New(store.Options{Addr: srv.Addr, Username: srv.Username, Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	go func() {
		ch := gate.New(st)
		for i := 0; i < 100; i++ {
			if _, _, err := ch.Decide(context.Background(), gate.Lookup{ContextID: "default/g1"}, gate.Decision{Choice: "stop", ChosenBy: "dana", Via: gate.ViaCLI}); err == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	code, _, errs := e.run("--id", "g1", "--timeout", "20s", "--handle-event", "rel=approve")
	if code != 0 || !strings.Contains(errs, "dana chose stop") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if got := e.mustRun("--id", "g1", "--get", "state.choices.rel.approve.chosenBy"); got != "dana\n" {
		t.Fatalf("decision not recorded: %q", got)
	}

	// nobody answers the next gate: the CLI gives up at --timeout, one error line
	code, out, errs := e.run("--id", "g1", "--timeout", "2s", "--handle-event", "rel=approve")
	if code == 0 || out != "" || !strings.Contains(errs, "GateTimedOut") {
		t.Fatalf("timeout: exit %d out %q err %q", code, out, errs)
	}
}
