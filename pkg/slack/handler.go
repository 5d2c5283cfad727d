package slack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpserver"
)

// DefaultMaxBodyBytes is the largest request body accepted when Handler.MaxBodyBytes is
// not set (config budgets.slackBodyBytes has the same default): 128 KiB. What Slack
// sends is small: a slash command is a few hundred bytes, and a block_actions payload
// carries the clicked message, which for our gates is the manual-choice template's
// message (1-3 KiB form-encoded). Slack would allow a message of up to 50 blocks, so an
// app that posts huge messages with buttons may need more: raise the budget then. A cap
// near what is needed bounds what an unverified request (the HMAC needs the whole body)
// can make the controller buffer: 64 requests in flight hold at most 8 MiB.
const DefaultMaxBodyBytes = 128 << 10

// Routes served by Handler.
const (
	PathInteractions = "/slack/interactions"
	PathCommands     = "/slack/commands"
)

// ReplayWindow is how long a signed request is remembered: a request is fresh while its
// timestamp is within MaxSkew of now, so at most 2*MaxSkew after it is first seen, plus
// a minute for clocks that differ between replicas.
const ReplayWindow = 2*MaxSkew + time.Minute

// Handler serves:
//
//	POST /slack/interactions  Slack interactivity (form field payload=<block_actions JSON>):
//	                          a click on the message of a pending choice decides it; a click
//	                          matching no pending choice goes to Forward, enriched with
//	                          action_values (as the original slack-payload-handler did)
//	POST /slack/commands      Slack slash commands: replies the form fields as a flat JSON
//	                          map and passes the same JSON to Forward
//
// The two Slack routes accept both kinds of request (like the original's single route)
// and require a valid Slack signature; the timestamp and signature headers are checked
// before the body is read. A signed request is accepted once: its signature is marked in
// Redis (Gates.MarkOnce, for ReplayWindow) before anything is decided or forwarded, a
// replay is answered 409 and changes nothing, and when the mark cannot be written the
// request is refused with 503. Bodies are limited to MaxBodyBytes (413: at once when the
// Content-Length says so, else as soon as the cap is passed); other methods get 405.
// Set the fields before serving; Handler must not be copied after first use.
//
// A click decides as the Slack user id Slack signed (payload user.id); the username is
// kept as a display name only.
type Handler struct {
	// Gates finds and decides gates and remembers the requests seen. Nil: the Slack
	// routes answer 503.
	Gates *gate.Store
	// SigningSecret is Slack's signing secret, read per request (so reloaded
	// configuration applies). Empty: the Slack routes answer 404.
	SigningSecret func() string
	// Clock defaults to time.Now.
	Clock func() time.Time
	// Forward, when set, receives (synchronously: keep it short, Slack waits at most 3s)
	// verified interactions that match no pending choice and every slash command, as
	// JSON. An error makes the reply 502.
	Forward func(ctx context.Context, payload []byte) error
	// Log defaults to discarding.
	Log *slog.Logger
	// MaxBodyBytes caps a request body; 0: DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Exceeded, when set, is told of each request refused by a limit of this handler
	// (httpserver.BudgetBody), for cicdstatemgr_budget_exceeded_total.
	Exceeded func(budget string)

	once sync.Once
	mux  *http.ServeMux
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() {
		m := http.NewServeMux()
		m.HandleFunc("POST "+PathInteractions, h.serveSlack)
		m.HandleFunc("POST "+PathCommands, h.serveSlack)
		h.mux = m
	})
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) now() time.Time {
	if h.Clock != nil {
		return h.Clock()
	}
	return time.Now()
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.New(slog.DiscardHandler)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the reply failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

func (h *Handler) maxBody() int64 {
	if h.MaxBodyBytes > 0 {
		return h.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

// tooLarge answers 413 and closes the connection, so that the server does not read (or
// drain) the rest of the body either.
func (h *Handler) tooLarge(w http.ResponseWriter, limit int64) {
	if h.Exceeded != nil {
		h.Exceeded(httpserver.BudgetBody)
	}
	w.Header().Set("Connection", "close")
	writeText(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", limit))
}

// readBody reads at most maxBody bytes; false when it replied with an error. A body
// whose Content-Length is over the cap is refused before a byte of it is read.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := h.maxBody()
	if r.ContentLength > limit {
		h.tooLarge(w, limit)
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.tooLarge(w, limit)
		} else {
			writeText(w, http.StatusBadRequest, "cannot read the request body")
		}
		return nil, false
	}
	return b, true
}

// serveSlack handles both Slack routes: payload= is an interaction, command= a slash
// command, anything else gets {} (as the original).
func (h *Handler) serveSlack(w http.ResponseWriter, r *http.Request) {
	log := h.log().With("path", r.URL.Path)
	secret := ""
	if h.SigningSecret != nil {
		secret = h.SigningSecret()
	}
	if secret == "" {
		log.Warn("slack request refused: no slack signing secret configured")
		writeText(w, http.StatusNotFound, "slack endpoints are not configured")
		return
	}
	now := h.now()
	refuse := func(err error) {
		log.Warn("slack request refused", "error", err)
		if errors.Is(err, ErrStale) {
			writeText(w, http.StatusUnauthorized, "stale request")
		} else {
			writeText(w, http.StatusUnauthorized, "invalid signature")
		}
	}
	// Headers first: an unsigned or stale request is refused before its body is read.
	if _, _, err := checkHeaders(r.Header, now); err != nil {
		refuse(err)
		return
	}
	if h.Gates == nil {
		writeText(w, http.StatusServiceUnavailable, "the gate store is not configured, try again")
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	if err := VerifySignature(secret, r.Header, body, now); err != nil {
		refuse(err)
		return
	}
	// Accepted once: mark the signed request before acting on it.
	first, err := h.Gates.MarkOnce(r.Context(), replayName(r.Header, body), ReplayWindow)
	if err != nil {
		log.Error("slack request refused: cannot record it against replays", "error", err)
		writeText(w, http.StatusServiceUnavailable, "cannot check this request against replays (the store is unavailable), try again")
		return
	}
	if !first {
		log.Warn("slack request refused: replayed", "timestamp", r.Header.Get(HeaderTimestamp))
		writeText(w, http.StatusConflict, "replayed request: this signed request was already received once")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeText(w, http.StatusBadRequest, "malformed form body")
		return
	}
	switch {
	case form.Has("payload"):
		h.interaction(w, r, log, form.Get("payload"))
	case form.Has("command"):
		h.command(w, r, log, form)
	default:
		writeJSON(w, http.StatusOK, map[string]any{})
	}
}

type interaction struct {
	Type string `json:"type"`
	User struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Name     string `json:"name"`
	} `json:"user"`
	Channel struct {
		ID string `json:"id"`
	} `json:"channel"`
	Container struct {
		ChannelID string `json:"channel_id"`
		MessageTS string `json:"message_ts"`
	} `json:"container"`
	Message struct {
		TS string `json:"ts"`
	} `json:"message"`
	Actions []struct {
		Value    string `json:"value"`
		ActionID string `json:"action_id"`
	} `json:"actions"`
}

func (h *Handler) interaction(w http.ResponseWriter, r *http.Request, log *slog.Logger, payload string) {
	var raw map[string]any
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		writeText(w, http.StatusBadRequest, "payload is not a JSON object")
		return
	}
	var in interaction
	if err := json.Unmarshal([]byte(payload), &in); err != nil {
		writeText(w, http.StatusBadRequest, "malformed interaction payload")
		return
	}
	if len(in.Actions) == 0 {
		// The original logged this and replied an empty 200.
		log.Info("slack interaction without actions ignored", "type", in.Type)
		writeJSON(w, http.StatusOK, map[string]any{})
		return
	}
	channel := in.Channel.ID
	if channel == "" {
		channel = in.Container.ChannelID
	}
	ts := in.Container.MessageTS
	if ts == "" {
		ts = in.Message.TS
	}
	value := in.Actions[0].Value
	if channel != "" && ts != "" && value != "" {
		// The user id is what Slack signed and what the allow-list holds; the
		// username is for display only.
		name := in.User.Username
		if name == "" {
			name = in.User.Name
		}
		p, d, err := h.Gates.Answer(r.Context(), gate.Lookup{SlackChannel: channel, SlackTS: ts},
			gate.Decision{Choice: value, ChosenBy: in.User.ID, UserID: in.User.ID, UserName: name, Via: gate.ViaSlack, At: h.now().UTC()})
		if !errors.Is(err, gate.ErrNotFound) {
			h.replyDecision(w, log, p, d, err)
			return
		}
	}
	if h.Forward == nil {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "handled": false})
		return
	}
	values := make([]any, len(in.Actions))
	for i, a := range in.Actions {
		values[i] = a.Value
	}
	raw["action_values"] = values
	h.forward(w, r, log, raw)
}

// replyDecision answers a Slack click that matched a pending choice.
func (h *Handler) replyDecision(w http.ResponseWriter, log *slog.Logger, p gate.Gate, d gate.Decision, err error) {
	switch {
	case err == nil:
		log.Info("choice decided", "key", p.Key, "context", p.ContextID, "choice", d.Choice, "chosenBy", d.ChosenBy, "userName", d.UserName, "via", d.Via)
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "choice": d.Choice, "chosenBy": d.ChosenBy})
	case errors.Is(err, gate.ErrAlreadyDecided):
		by := d.ChosenBy
		if d.UserName != "" {
			by += " (" + d.UserName + ")"
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": false,
			"message": fmt.Sprintf("already decided by %s: %s", by, d.Choice), "decision": d})
	case errors.Is(err, gate.ErrCancelled):
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "message": "no longer waiting for this choice"})
	default:
		code, msg := status(err)
		if code >= 500 {
			log.Error("deciding a choice failed", "key", p.Key, "error", err)
		}
		writeJSON(w, code, map[string]any{"ok": false, "error": msg})
	}
}

// status maps a choice error to an HTTP status and a message for the caller.
func status(err error) (int, string) {
	switch {
	case errors.Is(err, gate.ErrNotFound):
		return http.StatusNotFound, "no such pending choice"
	case errors.Is(err, gate.ErrCancelled):
		return http.StatusGone, "no longer waiting for this choice"
	case errors.Is(err, gate.ErrAlreadyDecided):
		return http.StatusConflict, "already decided"
	case errors.Is(err, gate.ErrInvalidChoice), errors.Is(err, gate.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, gate.ErrNotAllowed):
		return http.StatusForbidden, "you are not allowed to answer this choice"
	}
	return http.StatusServiceUnavailable, "the choice store is unavailable, try again"
}

func (h *Handler) command(w http.ResponseWriter, r *http.Request, log *slog.Logger, form url.Values) {
	flat := make(map[string]any, len(form))
	for k, v := range form {
		if len(v) > 0 {
			flat[k] = v[0]
		}
	}
	if h.Forward == nil {
		writeJSON(w, http.StatusOK, flat)
		return
	}
	h.forward(w, r, log, flat)
}

func (h *Handler) forward(w http.ResponseWriter, r *http.Request, log *slog.Logger, v map[string]any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		writeText(w, http.StatusBadRequest, "payload cannot be encoded")
		return
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if err := h.Forward(r.Context(), b); err != nil {
		log.Error("forwarding a slack request failed", "error", err)
		writeText(w, http.StatusBadGateway, "forwarding the request failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}

// replayName names a signed request for Gates.MarkOnce: the SHA-256 of what the
// signature covers (version, timestamp and body), so the same signed request always
// gets the same name and no two different ones do.
func replayName(header http.Header, body []byte) string {
	sum := sha256.New()
	sum.Write([]byte("v0:" + strings.TrimSpace(header.Get(HeaderTimestamp)) + ":"))
	sum.Write(body)
	return "slack:" + hex.EncodeToString(sum.Sum(nil))
}
