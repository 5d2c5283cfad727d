package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: the cicd context does not exist (or expired). The message names the
	// ref only ("cicd context not found: <namespace>/<id>"), never a Redis key or
	// address: a missing context and one the caller may not see read the same.
	ErrNotFound = errors.New("cicd context not found")
	// ErrUnavailable: Redis could not be reached or did not answer in time. Transient:
	// the same call may succeed later.
	ErrUnavailable = errors.New("redis unavailable")
	// ErrAuth: Redis rejected the credentials (or the user lacks a permission). Not
	// transient: fix the configuration.
	ErrAuth = errors.New("redis authentication failed")
	// ErrInvalidKey: a malformed context ref (no namespace, a namespace that is not a
	// DNS label, an empty or too long id, an id with '/'), or an empty or too long op
	// key or claim key.
	ErrInvalidKey = errors.New("invalid key")
	// ErrMalformed: a stored document is not a JSON object.
	ErrMalformed = errors.New("malformed stored document")
)

// unavailableError is a connection or timeout failure talking to Redis.
type unavailableError struct {
	addr, what string
	err        error
}

func (e *unavailableError) Error() string {
	var re *replicationError
	if errors.As(e.err, &re) {
		return fmt.Sprintf("Redis at %s: %s: %v", e.addr, e.what, e.err)
	}
	return fmt.Sprintf("Redis at %s is unavailable (is Redis running?): %s: %v", e.addr, e.what, e.err)
}
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }
func (e *unavailableError) Unwrap() error        { return e.err }

// authError is a rejected login or a missing ACL permission.
type authError struct {
	addr, user string
	perm       bool
	err        error
}

func (e *authError) Error() string {
	if e.perm {
		return fmt.Sprintf("Redis at %s: user %q lacks a permission (check its ACL rules): %v", e.addr, e.user, e.err)
	}
	return fmt.Sprintf("Redis at %s: authentication failed for user %q (check the Redis username and password): %v",
		e.addr, e.user, e.err)
}
func (e *authError) Is(target error) bool { return target == ErrAuth }
func (e *authError) Unwrap() error        { return e.err }

// scrubbed hides the password should it ever appear in an underlying message.
type scrubbed struct {
	err    error
	secret string
}

func (e *scrubbed) Error() string {
	msg := e.err.Error()
	if len(e.secret) >= 3 {
		msg = strings.ReplaceAll(msg, e.secret, "***")
	}
	return msg
}
func (e *scrubbed) Unwrap() error { return e.err }

// wrap classifies an error of the Redis client. what is the command and key is the Redis
// key (may be empty); both go into the message.
func (s *Store) wrap(err error, what, key string) error {
	if err == nil {
		return nil
	}
	var (
		ue *unavailableError
		ae *authError
	)
	if errors.As(err, &ue) || errors.As(err, &ae) {
		return err
	}
	if key != "" {
		what += " " + key
	}
	var out error
	switch {
	case redis.IsAuthError(err) || isAuthMessage(err):
		out = &authError{addr: s.addr, user: s.user, err: err}
	case redis.IsPermissionError(err):
		out = &authError{addr: s.addr, user: s.user, perm: true, err: err}
	case isTLSError(err):
		out = fmt.Errorf("Redis at %s: TLS connection failed (check the TLS settings and CA): %s: %w", s.addr, what, err)
	case errors.Is(err, context.Canceled):
		out = fmt.Errorf("Redis at %s: %s: %w", s.addr, what, err)
	case isTransient(err):
		out = &unavailableError{addr: s.addr, what: what, err: err}
	default:
		out = fmt.Errorf("Redis at %s: %s: %w", s.addr, what, err)
	}
	if s.secret2 != "" {
		out = &scrubbed{err: out, secret: s.secret2}
	}
	return &scrubbed{err: out, secret: s.secret}
}

func isAuthMessage(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	m := re.Error()
	return strings.Contains(m, "AUTH") && (strings.Contains(m, "password") || strings.Contains(m, "authenticat")) ||
		strings.Contains(m, "invalid username-password")
}

func isTLSError(err error) bool {
	var (
		rh  tls.RecordHeaderError
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		alt tls.AlertError
	)
	return errors.As(err, &rh) || errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) ||
		errors.As(err, &ci) || errors.As(err, &alt)
}

func isTransient(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted),
		redis.IsLoadingError(err), redis.IsReadOnlyError(err), redis.IsMasterDownError(err),
		redis.IsTryAgainError(err), redis.IsClusterDownError(err), redis.IsMaxClientsError(err),
		redis.HasErrorPrefix(err, "BUSY"):
		return true
	}
	return false
}
