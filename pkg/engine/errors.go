package engine

import (
	"errors"
	"fmt"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// Reasons say why an operation failed. The controller uses them as the
// CustomRun's condition reason; the CLI prints them in its error line.
const (
	ReasonInvalidParams      = "InvalidParams"
	ReasonInvalidAppConfig   = "InvalidAppConfig"
	ReasonInvalidConfig      = "InvalidConfig"
	ReasonContextNotFound    = "ContextNotFound"
	ReasonTemplateError      = "TemplateError"
	ReasonUnknownEvent       = "UnknownEvent"
	ReasonEventHandlerFailed = "EventHandlerFailed"
	ReasonStoreUnavailable   = "StoreUnavailable"
	ReasonStoreAuthFailed    = "StoreAuthFailed"
)

// Error is an operation failure with a reason and a message for people.
type Error struct {
	Reason  string
	Message string
	// Transient errors may succeed when retried (Redis down, endpoint 5xx).
	Transient bool
	// Budget names the budget of config-cicdstatemgr's `budgets:` that
	// stopped the op (appConfigBytes, valueBytes, contextBytes), empty for
	// any other failure: the controller counts it in
	// cicdstatemgr_budget_exceeded_total.
	Budget string
	Err    error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a permanent Error.
func Errorf(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsError classifies any error into an *Error: store and template errors get
// their own reasons, anything unknown is reported as given.
func AsError(err error, fallbackReason string) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var te *tmpl.Error
	switch {
	case errors.Is(err, store.ErrTooLarge):
		return &Error{Reason: ReasonContextTooLarge, Message: err.Error(), Budget: BudgetContextBytes, Err: err}
	case errors.Is(err, document.ErrTooDeep):
		return &Error{Reason: ReasonInvalidParams, Message: err.Error(), Budget: BudgetDocumentDepth, Err: err}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Reason: ReasonContextNotFound, Message: err.Error(), Err: err}
	case errors.Is(err, store.ErrAuth):
		return &Error{Reason: ReasonStoreAuthFailed, Message: err.Error(), Err: err}
	case errors.Is(err, store.ErrUnavailable):
		return &Error{Reason: ReasonStoreUnavailable, Message: err.Error(), Transient: true, Err: err}
	case errors.As(err, &te):
		return &Error{Reason: ReasonTemplateError, Message: err.Error(), Err: err}
	}
	return &Error{Reason: fallbackReason, Message: err.Error(), Err: err}
}

// ReasonOf returns the reason of err, or fallback.
func ReasonOf(err error, fallback string) string {
	if e := AsError(err, fallback); e != nil {
		return e.Reason
	}
	return fallback
}
