package handlers

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
)

// Journal record states.
const (
	recordIntent  = "intent"
	recordOutcome = "outcome"
)

// record is a journal entry (an op record of the store).
type record struct {
	State       string `json:"state"`
	Nonce       string `json:"nonce,omitempty"`
	Code        int    `json:"code,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	Body        string `json:"body,omitempty"`
}

// maxJournalKey keeps journal keys well below store.MaxOpKeyLen.
const maxJournalKey = 512

// journalKey builds "<journalKey>/<pipeline>/<event>/<type>/<block>"; an
// overlong tail is replaced by its hash.
func journalKey(base, pipeline, event, typ, block string) string {
	tail := pipeline + "/" + event + "/" + typ + "/" + block
	if len(base)+1+len(tail) > maxJournalKey {
		sum := sha256.Sum256([]byte(tail))
		tail = "sha256-" + hex.EncodeToString(sum[:])
	}
	return base + "/" + tail
}

// JournalKey is the journal key of one handler block's side effect.
func JournalKey(base, pipeline, event, typ, block string) string {
	return journalKey(base, pipeline, event, typ, block)
}

func nonce() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recordTimeout bounds the journal writes that follow a send; they run even
// when the operation's context ended meanwhile.
const recordTimeout = 5 * time.Second

// effect runs send at most once per journal key (see the package comment).
// It returns the reply and the status: StatusSent, StatusReplayed (reply of
// an earlier run) or StatusUnknown (nil reply: an earlier run may have sent).
func (r *Runner) effect(ctx context.Context, key string, send func(context.Context) (*httpclient.Response, error)) (*httpclient.Response, string, error) {
	if r.Store == nil || key == "" {
		resp, err := send(ctx)
		return resp, StatusSent, err
	}
	mine := nonce()
	intent, _ := json.Marshal(record{State: recordIntent, Nonce: mine})
	for try := 0; ; try++ {
		cur, stored, err := r.Store.SetOpResultNX(ctx, key, intent)
		if err != nil {
			return nil, "", fmt.Errorf("side-effect journal: %w", err)
		}
		if stored {
			break
		}
		if cur == nil { // expired or deleted in between
			if try < 2 {
				continue
			}
			return nil, "", fmt.Errorf("side-effect journal: record %s keeps disappearing", key)
		}
		var rec record
		if err := json.Unmarshal(cur, &rec); err != nil {
			return nil, "", fmt.Errorf("side-effect journal: record %s is unreadable: %v", key, err)
		}
		switch {
		case rec.State == recordOutcome:
			return &httpclient.Response{Status: rec.Code, ContentType: rec.ContentType, Body: rec.Body}, StatusReplayed, nil
		case rec.State == recordIntent && rec.Nonce == mine: // our SET NX went through, its reply was lost
		default:
			r.log().Warn("side effect may have been done by an earlier run that recorded no reply: not sending again", "journalKey", key)
			return nil, StatusUnknown, nil
		}
		break
	}
	resp, sendErr := send(ctx)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if sendErr != nil {
		// Not delivered, or refused: a retry of the operation may send again.
		if err := r.Store.DeleteOpResult(rctx, key); err != nil {
			r.log().Warn("side-effect journal: cannot drop the intent of a failed request", "journalKey", key, "error", err)
		}
		return resp, StatusSent, sendErr
	}
	out, _ := json.Marshal(record{State: recordOutcome, Code: resp.Status, ContentType: resp.ContentType, Body: resp.Body})
	if err := r.Store.SetOpResult(rctx, key, out); err != nil {
		return nil, "", fmt.Errorf("side-effect journal: sent, but cannot record the reply: %w", err)
	}
	return resp, StatusSent, nil
}

// newRedactor returns a function replacing every secret value of cfg by
// [REDACTED]. Redis user names (datasources.*.username) identify rather than
// authenticate and are left alone unless they also appear as a secret
// elsewhere (config.SecretValues lists them too).
func newRedactor(cfg *config.Config) func(string) string {
	keep := map[string]bool{}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch t := v.(type) {
		case *document.Map:
			t.Range(func(k string, c any) bool { walk(k, c); return true })
		case []any:
			for _, c := range t {
				walk(key, c)
			}
		case nil, bool:
		default:
			if key != "username" {
				keep[fmt.Sprint(t)] = true
			}
		}
	}
	walk("", cfg.Secrets)
	var values []string
	for _, v := range cfg.SecretValues() {
		if keep[v] {
			values = append(values, v)
		}
	}
	if len(values) == 0 {
		return func(s string) string { return s }
	}
	forms := map[string]bool{}
	var all []string
	for _, v := range values {
		for _, f := range append([]string{v}, encodedForms(v)...) {
			if len(f) >= 4 && !forms[f] {
				forms[f] = true
				all = append(all, f)
			}
		}
	}
	// longest first: strings.Replacer prefers the earliest match, and at one
	// position the first listed pair
	sort.SliceStable(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
	pairs := make([]string, 0, 2*len(all))
	for _, v := range all {
		pairs = append(pairs, v, "[REDACTED]")
	}
	rep := strings.NewReplacer(pairs...)
	return rep.Replace
}

// encodedForms lists the base64 texts that give a secret away: its standard
// and URL-safe encodings with and without padding and, for a secret encoded
// inside a longer text (to_base64 of "x" ~ secret), the run of characters
// that only the secret's bytes decide, for each of the three alignments.
func encodedForms(v string) []string {
	var out []string
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		out = append(out, enc.EncodeToString([]byte(v)))
		for k := 1; k <= 2; k++ {
			full := enc.EncodeToString(append(make([]byte, k), v...))
			// characters i with 6i >= 8k and 6i+6 <= 8(k+len(v))
			first := (8*k + 5) / 6
			last := (8*(k+len(v)))/6 - 1
			if last-first+1 >= 6 {
				out = append(out, full[first:last+1])
			}
		}
		// alignment 0 inside a longer text: all but a trailing partial group
		if n := (8 * len(v)) / 6; n >= 6 {
			out = append(out, enc.EncodeToString([]byte(v))[:n])
		}
	}
	return out
}
