package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// Every write of an op records an entry in the history of its context
// (docs/history.md): the engine says which op and on whose behalf
// (Request.Who), with the redaction and bounds of the op's configuration; the
// store writes the entry in the transaction of the write. The op history
// reads it back.

// ResultHistory is the result of op history: a JSON array of entries, newest
// first.
const ResultHistory = "history"

// MaxHistoryPathLen bounds the path filter of op history.
const MaxHistoryPathLen = 1024

// HistoryResultBytes bounds the JSON of op history's result: it goes into a
// CustomRun's status (an object of the API server, at most 1.5 MiB with
// everything else) and a CLI's output. Entries past it are left out, oldest
// first; an entry alone over it keeps its first changes and counts the rest
// in More.
const HistoryResultBytes = 256 << 10

// recording is ctx with the HistoryMeta of an op: its name, who asked, the
// redaction and bounds of cfg, and ContextChanged as the hook.
func (e *Engine) recording(ctx context.Context, ref, op string, who history.Who, cfg *config.Config) context.Context {
	b := cfg.Budgets()
	m := store.HistoryMeta{Op: op, Who: who, Redact: redactor(cfg), MaxEntries: b.HistoryLength, ValueBytes: b.HistoryValueBytes}
	if hook := e.ContextChanged; hook != nil {
		m.Written = func(en history.Entry) { hook(ctx, ref, en) }
	}
	return store.WithHistory(ctx, m)
}

type configKey struct{}

// WithConfig gives the writes made with ctx that carry no configuration of
// their own (RecordDecision) the history bounds and the redaction of cfg.
func WithConfig(ctx context.Context, cfg *config.Config) context.Context {
	return context.WithValue(ctx, configKey{}, cfg)
}

func configFrom(ctx context.Context) *config.Config {
	cfg, _ := ctx.Value(configKey{}).(*config.Config)
	return cfg
}

// redactor is cfg.Redact with the secret values listed once per op, not once
// per value.
func redactor(cfg *config.Config) func(string) string {
	if cfg == nil {
		return nil
	}
	secrets := cfg.SecretValues()
	if len(secrets) == 0 {
		return nil
	}
	return func(s string) string {
		for _, v := range secrets { // longest first, as Config.Redact
			s = strings.ReplaceAll(s, v, "[REDACTED]")
		}
		return s
	}
}

// historyStore is a Store that keeps the history of contexts.
type historyStore interface {
	History(ctx context.Context, ref string, limit int) ([]history.Entry, error)
}

// checkHistoryRequest validates the params of op history.
func checkHistoryRequest(req Request) error {
	switch {
	case len(req.Sets) > 0:
		return Errorf(ReasonInvalidParams, "history reads the history of a context; it takes no sets")
	case len(req.Gets) > 0, req.Event != nil, req.Generator != "", len(req.AppConfig) > 0:
		return Errorf(ReasonInvalidParams, "history takes an id, an optional path filter and an optional limit only")
	case req.HistoryLimit < 0:
		return Errorf(ReasonInvalidParams, "history limit %d: want a positive number of entries (0: all that are kept)", req.HistoryLimit)
	case len(req.HistoryPath) > MaxHistoryPathLen:
		return Errorf(ReasonInvalidParams, "history path is %d bytes long, at most %d", len(req.HistoryPath), MaxHistoryPathLen)
	}
	if p := req.HistoryPath; p != "" {
		if strings.TrimSpace(p) != p || strings.Contains(p, "..") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") {
			return Errorf(ReasonInvalidParams, "history path %q is not a dotted path like state.version", clipPath(p))
		}
		if _, err := document.ParsePath(p); err != nil {
			return Errorf(ReasonInvalidParams, "history path %q: %v", clipPath(p), err)
		}
	}
	return nil
}

// history reads the history of the request's context: the entries that
// touch HistoryPath (all without one), newest first, at most HistoryLimit,
// within HistoryResultBytes. The asker needs the access of get (access.go).
func (e *Engine) history(ctx context.Context, req Request) (*Outcome, error) {
	hs, ok := e.Store.(historyStore)
	if !ok {
		return nil, Errorf(ReasonInvalidParams, "history is not supported by this store")
	}
	if err := checkHistoryRequest(req); err != nil {
		return nil, err
	}
	if req.foreign() {
		ps, ok := e.Store.(pathStore)
		if !ok {
			return nil, req.notFound()
		}
		doc, err := ps.GetPaths(ctx, req.ref(), []string{ShareKey})
		if err != nil {
			return nil, err
		}
		if err := admit(req, doc); err != nil {
			return nil, err
		}
	}
	entries, err := hs.History(ctx, req.ref(), 0)
	if err != nil {
		return nil, err
	}
	var kept []history.Entry
	for _, en := range entries {
		if req.HistoryPath == "" || en.Touches(req.HistoryPath) {
			kept = append(kept, en)
		}
		if req.HistoryLimit > 0 && len(kept) == req.HistoryLimit {
			break
		}
	}
	kept, text, err := FitHistory(kept, HistoryResultBytes)
	if err != nil {
		return nil, err
	}
	return &Outcome{ID: req.ID, Results: []Result{{Name: ResultHistory, Value: text}}, History: kept}, nil
}

// FitHistory keeps the entries (newest first) whose JSON array fits in
// limit bytes, and returns them with that JSON ("[]" for none). The first
// entry is always kept: if it alone is over the limit, its last changes
// are counted in More instead of listed.
func FitHistory(entries []history.Entry, limit int) ([]history.Entry, string, error) {
	if entries == nil {
		entries = []history.Entry{}
	}
	size := 2 // []
	n := 0
	for i, en := range entries {
		b, err := json.Marshal(en)
		if err != nil {
			return nil, "", fmt.Errorf("encoding history entry %d: %w", i, err)
		}
		extra := len(b)
		if i > 0 {
			extra++ // ,
		}
		if size+extra > limit {
			if i == 0 {
				entries[0] = shrinkEntry(en, limit-size)
				n = 1
			}
			break
		}
		size += extra
		n++
	}
	entries = entries[:n]
	b, err := json.Marshal(entries)
	if err != nil {
		return nil, "", fmt.Errorf("encoding the history: %w", err)
	}
	return entries, string(b), nil
}

// shrinkEntry drops the last changes of en until its JSON fits in limit
// bytes, counting them in More.
func shrinkEntry(en history.Entry, limit int) history.Entry {
	changes := append([]history.Change(nil), en.Changes...)
	for len(changes) > 0 {
		en.More++
		changes = changes[:len(changes)-1]
		en.Changes = changes
		if b, err := json.Marshal(en); err == nil && len(b) <= limit {
			break
		}
	}
	return en
}
