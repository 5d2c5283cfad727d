// Package slack serves the HTTP endpoints Slack (and other callers) use to answer
// interactive choices: block_actions interactions (button clicks) and slash commands,
// both verified with Slack's v0 request signatures and accepted once. The controller
// mounts Handler on its own mux.
package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of Slack's request signing.
const (
	HeaderTimestamp = "X-Slack-Request-Timestamp"
	HeaderSignature = "X-Slack-Signature"
)

// MaxSkew is how far a request timestamp may be from now, either way.
const MaxSkew = 5 * time.Minute

// Errors of VerifySignature; test with errors.Is.
var (
	ErrNoSigningSecret = errors.New("slack: no signing secret configured")
	ErrMissingHeader   = errors.New("slack: missing signature header")
	ErrBadTimestamp    = errors.New("slack: invalid request timestamp")
	ErrStale           = errors.New("slack: stale request")
	ErrBadSignature    = errors.New("slack: invalid signature")
)

// Sign is the X-Slack-Signature of body sent at timestamp (Unix seconds, as text):
// "v0=" + hex(HMAC-SHA256(secret, "v0:" + timestamp + ":" + body)).
func Sign(signingSecret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(signingSecret))
	mac.Write([]byte("v0:" + timestamp + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks Slack's v0 signature of a request: the signature headers must
// be present, the timestamp within MaxSkew of now, and the signature the HMAC of the
// raw body under signingSecret (compared in constant time). Errors never contain the
// secret.
func VerifySignature(signingSecret string, header http.Header, body []byte, now time.Time) error {
	if signingSecret == "" {
		return ErrNoSigningSecret
	}
	tsText, got, err := checkHeaders(header, now)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(signingSecret))
	mac.Write([]byte("v0:" + tsText + ":"))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: signature mismatch", ErrBadSignature)
	}
	return nil
}

// checkHeaders checks what can be checked without the body: both headers present, the
// timestamp a number within MaxSkew of now, the signature "v0=" + hex. It returns the
// timestamp text and the decoded signature.
func checkHeaders(header http.Header, now time.Time) (string, []byte, error) {
	tsText := strings.TrimSpace(header.Get(HeaderTimestamp))
	if tsText == "" {
		return "", nil, fmt.Errorf("%w %s", ErrMissingHeader, HeaderTimestamp)
	}
	sig := strings.TrimSpace(header.Get(HeaderSignature))
	if sig == "" {
		return "", nil, fmt.Errorf("%w %s", ErrMissingHeader, HeaderSignature)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s is not a number of seconds", ErrBadTimestamp, HeaderTimestamp)
	}
	// Compare in seconds, without subtracting (a huge value would overflow).
	nowSec, maxSec := now.Unix(), int64(MaxSkew/time.Second)
	if ts < nowSec-maxSec {
		return "", nil, fmt.Errorf("%w: timestamp is more than %s in the past", ErrStale, MaxSkew)
	}
	if ts > nowSec+maxSec {
		return "", nil, fmt.Errorf("%w: timestamp is more than %s in the future", ErrStale, MaxSkew)
	}
	hexSig, ok := strings.CutPrefix(sig, "v0=")
	if !ok {
		return "", nil, fmt.Errorf("%w: %s must start with v0=", ErrBadSignature, HeaderSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s is not hex", ErrBadSignature, HeaderSignature)
	}
	return tsText, got, nil
}
