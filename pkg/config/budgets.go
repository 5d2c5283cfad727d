package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// BudgetsKey is the block of config.yaml (under cicdstatemgr) that sets the
// size budgets of what pipeline authors write (docs/security.md, "Budgets").
const BudgetsKey = "budgets"

// The default budgets (Budgets).
const (
	DefaultAppConfigBytes int64 = 1 << 20 // 1 MiB
	DefaultValueBytes     int64 = 1 << 20 // 1 MiB
	DefaultContextBytes   int64 = 8 << 20 // 8 MiB
	// DefaultSlackBodyBytes is the cap of a Slack request body (the
	// controller's Slack endpoints, pkg/slack.DefaultMaxBodyBytes).
	DefaultSlackBodyBytes int64 = 128 << 10 // 128 KiB
	// DefaultCallsPerHost is the number of event-handler HTTP calls in
	// flight to one host (httpclient.HostLimiter).
	DefaultCallsPerHost = 16
	// DefaultEventsInFlight is the number of handle-events running at once
	// (engine.Engine.EventSlots): under half of the Redis connection pool
	// (store.DefaultPoolSize, 32), so other ops always find a connection.
	DefaultEventsInFlight = 12
	// DefaultHistoryLength is how many entries the history of a context
	// keeps (docs/history.md).
	DefaultHistoryLength = 100
	// DefaultHistoryValueBytes bounds each old and new value of a history
	// entry's change.
	DefaultHistoryValueBytes = 512
)

// Budgets bounds the size of every input a pipeline author writes. One
// controller serves every namespace, so none of them may be unbounded.
// Every field is positive; Parse refuses anything else.
type Budgets struct {
	// AppConfigBytes bounds the text of an app config (inline or from a
	// ConfigMap) and of each base file it names. Over it init fails with
	// InvalidAppConfig before anything is parsed.
	AppConfigBytes int64
	// ValueBytes bounds the text of one set or set-yaml value, and of a
	// reply a handler captures. Over it the op fails with InvalidParams.
	ValueBytes int64
	// ContextBytes bounds a stored context: the encoded size of its fields
	// (pkg/store). Over it the write fails with ContextTooLarge.
	ContextBytes int64
	// RenderSteps, RenderOutputBytes, RenderDepth and RenderMacroDepth are
	// the render budget of every template (tmpl.Options).
	RenderSteps       int64
	RenderOutputBytes int64
	RenderDepth       int
	RenderMacroDepth  int
	// SlackBodyBytes caps the body of a request to the controller's Slack
	// endpoints; over it the request is answered 413 before the rest is
	// read (docs/security.md, "HTTP server").
	SlackBodyBytes int64
	// CallsPerHost bounds the event-handler HTTP calls in flight to one
	// host, so that a dead endpoint takes at most this many of the
	// controller's calls; a call finding its host full waits up to two
	// seconds, then its op is retried later (a transient failure).
	CallsPerHost int
	// EventsInFlight bounds the handle-events running at once: each holds
	// a Redis connection while its handlers call their endpoints. Keep it
	// under half of the store's connection pool (32).
	EventsInFlight int
	// HistoryLength is how many entries the history of a context keeps;
	// older ones are trimmed as new ones come (docs/history.md).
	HistoryLength int
	// HistoryValueBytes bounds each old and new value a history entry
	// records; a longer value is cut and its full size recorded.
	HistoryValueBytes int
}

// DefaultBudgets returns the budgets of a configuration without a budgets
// block.
func DefaultBudgets() Budgets {
	return Budgets{
		AppConfigBytes:    DefaultAppConfigBytes,
		ValueBytes:        DefaultValueBytes,
		ContextBytes:      DefaultContextBytes,
		RenderSteps:       tmpl.DefaultMaxSteps,
		RenderOutputBytes: tmpl.DefaultMaxOutput,
		RenderDepth:       tmpl.DefaultMaxDepth,
		RenderMacroDepth:  tmpl.DefaultMaxMacroDepth,
		SlackBodyBytes:    DefaultSlackBodyBytes,
		CallsPerHost:      DefaultCallsPerHost,
		EventsInFlight:    DefaultEventsInFlight,
		HistoryLength:     DefaultHistoryLength,
		HistoryValueBytes: DefaultHistoryValueBytes,
	}
}

// TemplateOptions is the render budget as tmpl.Options (CacheSize left 0,
// the package default).
func (b Budgets) TemplateOptions() tmpl.Options {
	return tmpl.Options{
		MaxSteps:      b.RenderSteps,
		MaxOutput:     b.RenderOutputBytes,
		MaxDepth:      b.RenderDepth,
		MaxMacroDepth: b.RenderMacroDepth,
	}
}

// Budgets returns the budgets of the configuration: the defaults overridden
// by config.yaml's budgets block (validated by Parse). A Config not made by
// Parse has the defaults.
func (c *Config) Budgets() Budgets {
	if c == nil || c.budgets == nil {
		return DefaultBudgets()
	}
	return *c.budgets
}

// parseBudgets reads the budgets block of config data.
func parseBudgets(data *document.Map) (Budgets, error) {
	b := DefaultBudgets()
	v, ok := data.Get(BudgetsKey)
	if !ok || v == nil {
		return b, nil
	}
	m, isMap := v.(*document.Map)
	if !isMap {
		return b, fmt.Errorf("config.yaml: %s must be a map, not a %s", BudgetsKey, document.TypeName(v))
	}
	var err error
	m.Range(func(k string, v any) bool {
		switch k {
		case "appConfigBytes":
			b.AppConfigBytes, err = budgetInt(k, v)
		case "valueBytes":
			b.ValueBytes, err = budgetInt(k, v)
		case "contextBytes":
			b.ContextBytes, err = budgetInt(k, v)
		case "slackBodyBytes":
			b.SlackBodyBytes, err = budgetInt(k, v)
		case "callsPerHost":
			b.CallsPerHost, err = budgetCount(k, v, 1<<16)
		case "eventsInFlight":
			b.EventsInFlight, err = budgetCount(k, v, 1<<10)
		case "historyLength":
			b.HistoryLength, err = budgetCount(k, v, 10000)
		case "historyValueBytes":
			b.HistoryValueBytes, err = budgetCount(k, v, 64<<10)
		case "render":
			err = parseRenderBudgets(&b, v)
		default:
			err = fmt.Errorf("config.yaml: unknown budget %s.%s (known: appConfigBytes, valueBytes, contextBytes, slackBodyBytes, callsPerHost, eventsInFlight, historyLength, historyValueBytes, render)", BudgetsKey, k)
		}
		return err == nil
	})
	return b, err
}

func parseRenderBudgets(b *Budgets, v any) error {
	if v == nil {
		return nil
	}
	m, isMap := v.(*document.Map)
	if !isMap {
		return fmt.Errorf("config.yaml: %s.render must be a map, not a %s", BudgetsKey, document.TypeName(v))
	}
	var err error
	m.Range(func(k string, v any) bool {
		name := "render." + k
		var n int64
		n, err = budgetInt(name, v)
		if err != nil {
			return false
		}
		switch k {
		case "steps":
			b.RenderSteps = n
		case "outputBytes":
			b.RenderOutputBytes = n
		case "depth", "macroDepth":
			if n > 1<<20 {
				err = fmt.Errorf("config.yaml: %s.%s %d is too large (at most %d)", BudgetsKey, name, n, 1<<20)
				return false
			}
			if k == "depth" {
				b.RenderDepth = int(n)
			} else {
				b.RenderMacroDepth = int(n)
			}
		default:
			err = fmt.Errorf("config.yaml: unknown budget %s.%s (known: steps, outputBytes, depth, macroDepth)", BudgetsKey, name)
			return false
		}
		return true
	})
	return err
}

// budgetCount reads a budget that counts things at once: a positive integer
// of at most max.
func budgetCount(name string, v any, max int64) (int, error) {
	n, err := budgetInt(name, v)
	if err == nil && n > max {
		err = fmt.Errorf("config.yaml: %s.%s %d is too large (at most %d)", BudgetsKey, name, n, max)
	}
	return int(n), err
}

// budgetInt reads one budget: a positive integer (a YAML int, or a string of
// decimal digits).
func budgetInt(name string, v any) (int64, error) {
	bad := func() (int64, error) {
		return 0, fmt.Errorf("config.yaml: %s.%s must be a positive integer, not %s", BudgetsKey, name, describe(v))
	}
	var n int64
	switch t := v.(type) {
	case int:
		n = int64(t)
	case int64:
		n = t
	case int32:
		n = int64(t)
	case uint64:
		if t > 1<<62 {
			return bad()
		}
		n = int64(t)
	case string:
		p, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		if err != nil {
			return bad()
		}
		n = p
	default:
		return bad()
	}
	if n <= 0 {
		return bad()
	}
	return n, nil
}

func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		if len(t) > 40 {
			t = t[:40] + "..."
		}
		return strconv.Quote(t)
	case *document.Map, []any:
		return "a " + document.TypeName(v)
	}
	s := fmt.Sprint(v)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("%s (a %s)", s, document.TypeName(v))
}
