// Package httpclient is the one HTTP client of the event handlers: every
// request gets a timeout, connection errors, 429 and 5xx replies are retried
// a bounded number of times with exponential backoff, bodies are UTF-8 and a
// reply is returned whatever its content type.
//
// Errors never carry the request URL's path or query (a Slack response_url or
// a webhook URL is a credential), only its host. No request follows a
// redirect to another host. A Request with a Policy (a URL written by a
// pipeline author) goes only to the hosts the admin allows (policy.go).
package httpclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cicdstatemgr/cicdstatemgr/internal/delay"
)

// Version is the version in the default User-Agent (set with
// -ldflags "-X github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient.Version=...").
var Version = "dev"

// Defaults of Client.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultAttempts     = 3
	DefaultBackoff      = 250 * time.Millisecond
	DefaultMaxBackoff   = 5 * time.Second
	DefaultMaxBodyBytes = 4 << 20
)

// UserAgent is the default User-Agent header.
func UserAgent() string { return "cicdstatemgr/" + Version }

// Header is one request header; order is kept.
type Header struct {
	Name, Value string
}

// Request is one HTTP request.
type Request struct {
	Method  string // default POST
	URL     string
	Headers []Header
	Body    []byte
	// Policy, when set, limits where the request may go (a URL written by
	// a pipeline author): the URL is checked before anything is sent, every
	// address when dialling, and every redirect; a refusal is a
	// *RefusedError. A non-2xx reply's body is kept in the *Error only when
	// the host matched an exact entry.
	Policy *Policy
}

// Response is a reply.
type Response struct {
	Status      int
	ContentType string
	// Body is the reply as UTF-8 text (invalid bytes replaced by U+FFFD),
	// cut at the client's MaxBodyBytes.
	Body string
}

// Client sends requests. The zero value uses the defaults; it is safe for
// concurrent use.
type Client struct {
	// HTTP sends the requests; nil means a client over a clone of
	// http.DefaultTransport (proxy settings from the environment).
	HTTP *http.Client
	// Timeout bounds each attempt (connect, send, read the reply).
	Timeout time.Duration
	// Attempts is the number of tries of a retryable failure.
	Attempts int
	// Backoff is the wait before the second attempt; it doubles for each
	// further attempt (with jitter), up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// UserAgent is sent unless the request sets one; default UserAgent().
	UserAgent string
	// MaxBodyBytes caps how much of a reply is read.
	MaxBodyBytes int64
	// Hosts, when set, bounds the requests in flight to each host (shared
	// between clients); a request that finds no free slot fails with a
	// transient *Error wrapping ErrHostBusy, before anything is sent.
	Hosts *HostLimiter
}

// WrapTransport, when set, wraps the transport of the default client and of
// every Policy's client: the controller sets its tracing there at start
// (pkg/observability.Install), so that the CLI, which never sets it, links no
// tracing library (its start-up is measured against a Go hello world: README,
// Benchmarks). Set it before the first request.
var WrapTransport func(http.RoundTripper) http.RoundTripper

// wrap is rt under WrapTransport, if set.
func wrap(rt http.RoundTripper) http.RoundTripper {
	if WrapTransport == nil {
		return rt
	}
	return WrapTransport(rt)
}

// defaultHTTP is the client of a Client without HTTP, made at its first
// request (after WrapTransport is set, and never by a run that sends none).
var defaultHTTP = sync.OnceValue(func() *http.Client {
	return &http.Client{Transport: wrap(http.DefaultTransport.(*http.Transport).Clone())}
})

// New returns a client with the defaults.
func New() *Client { return &Client{} }

// Error is a failed request.
type Error struct {
	Method string
	Host   string
	// Status is the HTTP status of the last reply, 0 when there was none.
	Status int
	// Body is the start of the last reply's body.
	Body     string
	Attempts int
	// Err is the transport error when there was no reply.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s to host %s", e.Method, e.Host)
	if e.Status != 0 {
		fmt.Fprintf(&b, " got HTTP %d %s", e.Status, http.StatusText(e.Status))
	} else if e.Err != nil {
		fmt.Fprintf(&b, " failed: %v", e.Err)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	if body := strings.TrimSpace(e.Body); body != "" {
		fmt.Fprintf(&b, ": %s", clip(body, 300))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Transient says whether the failure may go away: no reply, 429 or 5xx.
func (e *Error) Transient() bool {
	return e.Status == 0 || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Host returns the host[:port] of a URL, or a placeholder when it does not parse.
func Host(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Host
}

// Do sends req, retrying retryable failures. A 2xx reply is returned with a
// nil error; any other outcome returns an *Error (and the last reply, if
// there was one).
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	method := req.Method
	if method == "" {
		method = http.MethodPost
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &Error{Method: method, Host: Host(req.URL), Attempts: 1,
			Err: errors.New("the URL must be an absolute http:// or https:// URL")}
	}
	showBody := true
	hc := c.httpClient()
	if req.Policy != nil {
		if err := req.Policy.Check(req.URL); err != nil {
			return nil, err
		}
		showBody = req.Policy.Exact(req.URL)
		hc = req.Policy.httpClient(c.timeout())
	}
	release, err := c.Hosts.acquire(ctx, u.Host)
	if err != nil {
		return nil, &Error{Method: method, Host: u.Host, Attempts: 1, Err: err}
	}
	defer release() // the slot covers every attempt: retries count as in flight
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	delays, ceiling := c.backoff()
	for attempt := 1; ; attempt++ {
		resp, retryAfter, err := c.once(ctx, hc, method, u, req)
		if err == nil && resp.Status >= 200 && resp.Status < 300 {
			return resp, nil
		}
		var refusal *RefusedError
		if errors.As(err, &refusal) {
			return nil, refusal
		}
		e := &Error{Method: method, Host: u.Host, Attempts: attempt}
		if resp != nil {
			e.Status = resp.Status
			if showBody {
				e.Body = resp.Body
			} else {
				resp = &Response{Status: resp.Status, ContentType: resp.ContentType}
			}
		} else {
			e.Err = err
		}
		if !e.Transient() || attempt >= attempts || ctx.Err() != nil {
			return resp, e
		}
		if err := sleep(ctx, delays.Step(), retryAfter, ceiling); err != nil {
			return resp, e
		}
	}
}

// once makes one attempt. It returns the reply, or the transport error with
// the URL removed.
func (c *Client) once(ctx context.Context, hc *http.Client, method string, u *url.URL, req Request) (*Response, time.Duration, error) {
	timeout := c.timeout()
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(actx, method, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		return nil, 0, errors.New("cannot build the request")
	}
	for _, h := range req.Headers {
		hr.Header.Set(h.Name, h.Value)
	}
	if hr.Header.Get("User-Agent") == "" {
		ua := c.UserAgent
		if ua == "" {
			ua = UserAgent()
		}
		hr.Header.Set("User-Agent", ua)
	}
	res, err := hc.Do(hr)
	if err != nil {
		return nil, 0, scrub(err, ctx, actx, timeout)
	}
	defer res.Body.Close()
	limit := c.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, limit))
	if err != nil {
		return nil, 0, scrub(err, ctx, actx, timeout)
	}
	return &Response{
		Status:      res.StatusCode,
		ContentType: res.Header.Get("Content-Type"),
		Body:        strings.ToValidUTF8(string(b), "\uFFFD"),
	}, retryAfter(res), nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// httpClient is c.HTTP (or the default client) following redirects to the
// same host only: the request's headers (a trigger's secret header) must not
// follow a redirect elsewhere.
func (c *Client) httpClient() *http.Client {
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP()
	}
	cp := *hc
	cp.CheckRedirect = sameHostRedirect
	return &cp
}

// scrub drops the URL from a transport error (url.Error prints it whole).
func scrub(err error, ctx, actx context.Context, timeout time.Duration) error {
	if ctx.Err() != nil {
		return fmt.Errorf("gave up: %w", ctx.Err())
	}
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no reply within %s", timeout)
	}
	var refusal *RefusedError
	if errors.As(err, &refusal) {
		return refusal
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return fmt.Errorf("cannot connect: %w", oe.Err)
	}
	return err
}

func retryAfter(res *http.Response) time.Duration {
	if res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(res.Header.Get("Retry-After"))); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// backoff returns the waits between the attempts of one Do and their
// ceiling. Wait n is drawn from [d/2, d) with d = Backoff doubled n-1 times,
// at most MaxBackoff (defaults 250ms and 5s): jittered.Step draws it. The
// jitter spreads the retries of handlers that failed together; with
// DefaultAttempts the waits add up to less than a second, and the 5s ceiling
// bounds a slower custom configuration (Attempts, Backoff) and a Retry-After
// reply.
func (c *Client) backoff() (*jittered, time.Duration) {
	base, ceiling := c.Backoff, c.MaxBackoff
	if base <= 0 {
		base = DefaultBackoff
	}
	if ceiling <= 0 {
		ceiling = DefaultMaxBackoff
	}
	return &jittered{halves: delay.New(base/2, ceiling/2)}, ceiling
}

// jittered is a wait doubling up to a ceiling, each drawn from its upper half.
type jittered struct{ halves delay.Doubling }

// Step returns the next wait: half of d plus up to another half at random.
func (j *jittered) Step() time.Duration {
	h := j.halves.Step()
	return h + rand.N(h+1)
}

// sleep waits d, or longer when the server asked to Retry-After (at most
// ceiling), or until ctx ends.
func sleep(ctx context.Context, d, retryAfter, ceiling time.Duration) error {
	if retryAfter > d {
		d = min(retryAfter, ceiling)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
