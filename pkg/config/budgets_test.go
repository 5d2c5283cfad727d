package config

import (
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

func TestBudgetsDefaults(t *testing.T) {
	c, err := Parse([]byte("cicdstatemgr:\n  redis: {}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Budgets{
		AppConfigBytes: 1048576, ValueBytes: 1048576, ContextBytes: 8388608,
		RenderSteps: 1000000, RenderOutputBytes: 1048576, RenderDepth: 64, RenderMacroDepth: 32,
		SlackBodyBytes: 131072, CallsPerHost: 16, EventsInFlight: 12, HistoryLength: 100, HistoryValueBytes: 512,
	}
	if got := c.Budgets(); got != want {
		t.Fatalf("defaults: got %+v, want %+v", got, want)
	}
	if got := (&Config{}).Budgets(); got != want {
		t.Fatalf("zero Config: got %+v", got)
	}
	var nilCfg *Config
	if got := nilCfg.Budgets(); got != want {
		t.Fatalf("nil Config: got %+v", got)
	}
	if got := c.Budgets().TemplateOptions(); got != (tmpl.Options{MaxSteps: 1000000, MaxOutput: 1048576, MaxDepth: 64, MaxMacroDepth: 32}) {
		t.Fatalf("TemplateOptions: %+v", got)
	}
}

func TestBudgetsOverrides(t *testing.T) {
	c, err := Parse([]byte(`cicdstatemgr:
  budgets:
    appConfigBytes: 1000
    valueBytes: "2000"
    contextBytes: 3000
    slackBodyBytes: 6000
    callsPerHost: 3
    eventsInFlight: 4
    historyLength: 20
    historyValueBytes: 64
    render: {steps: 4000, outputBytes: 5000, depth: 16, macroDepth: 8}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Budgets{AppConfigBytes: 1000, ValueBytes: 2000, ContextBytes: 3000,
		RenderSteps: 4000, RenderOutputBytes: 5000, RenderDepth: 16, RenderMacroDepth: 8, SlackBodyBytes: 6000, CallsPerHost: 3, EventsInFlight: 4,
		HistoryLength: 20, HistoryValueBytes: 64}
	if got := c.Budgets(); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// a partial block keeps the other defaults
	c, err = Parse([]byte("cicdstatemgr:\n  budgets:\n    valueBytes: 10\n    render: {steps: 7}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := c.Budgets()
	if b.ValueBytes != 10 || b.RenderSteps != 7 || b.AppConfigBytes != DefaultAppConfigBytes || b.ContextBytes != DefaultContextBytes || b.RenderOutputBytes != tmpl.DefaultMaxOutput {
		t.Fatalf("partial: %+v", b)
	}
}

func TestBudgetsMalformed(t *testing.T) {
	for block, want := range map[string]string{
		"budgets: 5":                                       "budgets must be a map",
		"budgets: {valueBytes: -1}":                        "budgets.valueBytes must be a positive integer, not -1",
		"budgets: {valueBytes: 0}":                         "budgets.valueBytes must be a positive integer",
		"budgets: {slackBodyBytes: 0}":                     "budgets.slackBodyBytes must be a positive integer",
		"budgets: {callsPerHost: 0}":                       "budgets.callsPerHost must be a positive integer",
		"budgets: {callsPerHost: 100000}":                  "budgets.callsPerHost 100000 is too large (at most 65536)",
		"budgets: {eventsInFlight: 2000}":                  "budgets.eventsInFlight 2000 is too large (at most 1024)",
		"budgets: {historyLength: 0}":                      "budgets.historyLength must be a positive integer, not 0",
		"budgets: {historyLength: 20000}":                  "budgets.historyLength 20000 is too large (at most 10000)",
		"budgets: {historyValueBytes: 100000}":             "budgets.historyValueBytes 100000 is too large (at most 65536)",
		"budgets: {historyValueBytes: -3}":                 "budgets.historyValueBytes must be a positive integer, not -3",
		"budgets: {appConfigBytes: 1.5}":                   "budgets.appConfigBytes must be a positive integer, not 1.5",
		"budgets: {contextBytes: 8MiB}":                    `budgets.contextBytes must be a positive integer, not "8MiB"`,
		"budgets: {contextBytes: true}":                    "budgets.contextBytes must be a positive integer",
		"budgets: {contextBytes: null}":                    "budgets.contextBytes must be a positive integer, not null",
		"budgets: {contextBytes: [1]}":                     "budgets.contextBytes must be a positive integer, not a list",
		"budgets: {contextBytes: 99999999999999999999999}": "budgets.contextBytes must be a positive integer",
		"budgets: {valuBytes: 10}":                         "unknown budget budgets.valuBytes",
		"budgets: {render: 3}":                             "budgets.render must be a map",
		"budgets: {render: {steps: -5}}":                   "budgets.render.steps must be a positive integer, not -5",
		"budgets: {render: {outputBytes: x}}":              `budgets.render.outputBytes must be a positive integer, not "x"`,
		"budgets: {render: {depth: 99999999}}":             "budgets.render.depth 99999999 is too large",
		"budgets: {render: {stepz: 1}}":                    "unknown budget budgets.render.stepz",
	} {
		_, err := Parse([]byte("cicdstatemgr:\n  "+block+"\n"), nil)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "config.yaml: ") {
			t.Errorf("%s: got %v, want an error with %q", block, err, want)
		}
	}
}
