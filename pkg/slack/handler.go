package slack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
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
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 1 << 20

// Routes served by Handler.
const (
	PathInteractions = "/slack/interactions"
	PathCommands     = "/slack/commands"
	PathGates        = "/gates/" // + token
)

// Handler serves:
//
//	POST /slack/interactions  Slack interactivity (form field payload=<block_actions JSON>):
//	                          a click on the message of a pending choice decides it; a click
//	                          matching no pending choice goes to Forward, enriched with
//	                          action_values (as the original slack-payload-handler did)
//	POST /slack/commands      Slack slash commands: replies the form fields as a flat JSON
//	                          map and passes the same JSON to Forward
//	POST /gates/{token}     non-Slack callers: Authorization: Bearer <APIToken>, JSON body
//	                          {"choice": "...", "chosenBy": "..."}
//
// The two Slack routes accept both kinds of request (like the original's single route)
// and require a valid Slack signature. Bodies are limited to MaxBodyBytes; other methods
// get 405. Set the fields before serving; Handler must not be copied after first use.
type Handler struct {
	Gates *gate.Store
	// SigningSecret is Slack's signing secret, read per request (so reloaded
	// configuration applies). Empty: the Slack routes answer 404.
	SigningSecret func() string
	// APIToken is the bearer token of /gates/{token}, read per request. Empty or
	// nil: that route answers 404.
	APIToken func() string
	// Clock defaults to time.Now.
	Clock func() time.Time
	// Forward, when set, receives (synchronously: keep it short, Slack waits at most 3s)
	// verified interactions that match no pending choice and every slash command, as
	// JSON. An error makes the reply 502.
	Forward func(ctx context.Context, payload []byte) error
	// Log defaults to discarding.
	Log *slog.Logger

	once sync.Once
	mux  *http.ServeMux
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() {
		m := http.NewServeMux()
		m.HandleFunc("POST "+PathInteractions, h.serveSlack)
		m.HandleFunc("POST "+PathCommands, h.serveSlack)
		m.HandleFunc("POST "+PathGates+"{token}", h.serveDecision)
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

// readBody reads at most MaxBodyBytes; false when it replied with an error.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeText(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes))
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
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if err := VerifySignature(secret, r.Header, body, h.now()); err != nil {
		log.Warn("slack request refused", "error", err)
		if errors.Is(err, ErrStale) {
			writeText(w, http.StatusUnauthorized, "stale request")
		} else {
			writeText(w, http.StatusUnauthorized, "invalid signature")
		}
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
	if channel != "" && ts != "" && value != "" && h.Gates != nil {
		by := in.User.Username
		if by == "" {
			by = in.User.Name
		}
		if by == "" {
			by = in.User.ID
		}
		p, d, err := h.Gates.Decide(r.Context(), gate.Lookup{SlackChannel: channel, SlackTS: ts},
			gate.Decision{Choice: value, ChosenBy: by, UserID: in.User.ID, Via: gate.ViaSlack, At: h.now().UTC()})
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
		log.Info("choice decided", "key", p.Key, "context", p.ContextID, "choice", d.Choice, "chosenBy", d.ChosenBy, "via", d.Via)
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "choice": d.Choice, "chosenBy": d.ChosenBy})
	case errors.Is(err, gate.ErrAlreadyDecided):
		writeJSON(w, http.StatusOK, map[string]any{"ok": false,
			"message": fmt.Sprintf("already decided by %s: %s", d.ChosenBy, d.Choice), "decision": d})
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

type decisionRequest struct {
	Choice   string `json:"choice"`
	ChosenBy string `json:"chosenBy"`
}

func (h *Handler) serveDecision(w http.ResponseWriter, r *http.Request) {
	log := h.log().With("path", PathGates+"…")
	want := ""
	if h.APIToken != nil {
		want = h.APIToken()
	}
	if want == "" || h.Gates == nil {
		writeText(w, http.StatusNotFound, "404 page not found")
		return
	}
	if !bearerOK(r.Header.Get("Authorization"), want) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cicdstatemgr"`)
		writeText(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req decisionRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "body must be JSON: {\"choice\": \"...\", \"chosenBy\": \"...\"}"})
		return
	}
	if req.Choice == "" || strings.TrimSpace(req.ChosenBy) == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "choice and chosenBy are required"})
		return
	}
	p, d, err := h.Gates.Decide(r.Context(), gate.Lookup{Token: r.PathValue("token")},
		gate.Decision{Choice: req.Choice, ChosenBy: req.ChosenBy, Via: gate.ViaHTTP, At: h.now().UTC()})
	switch {
	case err == nil:
		log.Info("choice decided", "key", p.Key, "context", p.ContextID, "choice", d.Choice, "chosenBy", d.ChosenBy, "via", d.Via)
		writeJSON(w, http.StatusOK, map[string]any{"decision": d})
	case errors.Is(err, gate.ErrAlreadyDecided):
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "decision": d})
	default:
		code, msg := status(err)
		if code >= 500 {
			log.Error("deciding a choice failed", "error", err)
		}
		out := map[string]any{"error": msg}
		var ic *gate.InvalidChoiceError
		if errors.As(err, &ic) {
			out["options"] = ic.Options
		}
		writeJSON(w, code, out)
	}
}

// bearerOK compares the bearer token of an Authorization header with want in constant
// time (hashing both first, so not even the length leaks).
func bearerOK(header, want string) bool {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	a := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	b := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
