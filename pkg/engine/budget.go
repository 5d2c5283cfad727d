package engine

import (
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// ReasonContextTooLarge: a write would make the stored context larger than
// budgets.contextBytes; nothing was written.
const ReasonContextTooLarge = "ContextTooLarge"

// The size budgets an Error may name (Error.Budget), as spelled in
// config-cicdstatemgr's `budgets:`.
const (
	BudgetAppConfigBytes = "appConfigBytes"
	BudgetValueBytes     = "valueBytes"
	BudgetContextBytes   = "contextBytes"
	// BudgetDocumentDepth: a value nested deeper than a stored document
	// may be (1000 levels, fixed: what the parsers read back).
	BudgetDocumentDepth = "documentDepth"
	// BudgetEventsInFlight: the handle-events running at once
	// (Engine.EventSlots).
	BudgetEventsInFlight = "eventsInFlight"
	// BudgetCallsPerHost: a handler's call found its host at
	// budgets.callsPerHost calls in flight (httpclient.ErrHostBusy).
	BudgetCallsPerHost = "callsPerHost"
)

// budgets returns the budgets of the request's configuration (the defaults
// without one).
func (r Request) budgets() config.Budgets { return r.Config.Budgets() }

// CheckBudgets checks the inputs of a request against the budgets of its
// configuration (docs/security.md, "Budgets"): the app config text (init)
// and every set value. It runs before anything is read or written.
func CheckBudgets(req Request) error {
	b := req.budgets()
	if n := int64(len(req.AppConfig)); n > b.AppConfigBytes {
		return AppConfigTooLarge("app config", n, b.AppConfigBytes)
	}
	return CheckSetBudgets(req.Sets, b.ValueBytes)
}

// CheckSetBudgets refuses a set whose value is over limit bytes
// (budgets.valueBytes) with InvalidParams, naming the path and the limit but
// never the value. A text value counts its bytes; any other value (set-yaml,
// a file:// value parsed as YAML) the bytes of its compact JSON.
func CheckSetBudgets(sets []document.Assignment, limit int64) error {
	for _, a := range sets {
		if n := ValueSize(a.Value); n > limit {
			return ValueTooLarge("set "+clipPath(a.Path), n, limit)
		}
	}
	return nil
}

// ValueTooLarge is the InvalidParams error of a value (what) of n bytes
// over the budgets.valueBytes limit.
func ValueTooLarge(what string, n, limit int64) *Error {
	e := Errorf(ReasonInvalidParams, "%s: the value is %d bytes, over the budget of %d bytes (budgets.valueBytes)", what, n, limit)
	e.Budget = BudgetValueBytes
	return e
}

// ValueSize is the size in bytes of a set value: the length of a string, or
// of the compact JSON of anything else.
func ValueSize(v any) int64 {
	if t, ok := v.(string); ok {
		return int64(len(t))
	}
	b, err := document.MarshalJSON(v, document.JSONStyle{})
	if err != nil {
		return 0 // not encodable: SetPath or the store reports it
	}
	return int64(len(b))
}

// AppConfigTooLarge is the InvalidAppConfig error of an app config or base
// (what) of n bytes over the budgets.appConfigBytes limit.
func AppConfigTooLarge(what string, n, limit int64) *Error {
	e := Errorf(ReasonInvalidAppConfig, "%s is %d bytes, over the budget of %d bytes (budgets.appConfigBytes)", what, n, limit)
	e.Budget = BudgetAppConfigBytes
	return e
}

func clipPath(p string) string {
	if len(p) > 120 {
		return p[:120] + "..."
	}
	return p
}
