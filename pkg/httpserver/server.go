package httpserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Limits are what one listener allows a client.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers; ReadTimeout the
	// whole request, body included; WriteTimeout the reply (from the end of
	// the headers); IdleTimeout a kept-alive connection between requests.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes caps the request line and headers.
	MaxHeaderBytes int
	// MaxInFlight caps the requests handled at once (LimitInFlight); 0: no cap.
	MaxInFlight int
	// MaxConnsPerClient caps the open connections of one client address
	// (LimitPerClient); 0: no cap.
	MaxConnsPerClient int
}

// Defaults of the Slack listener (the controller's --http-* flags).
const (
	DefaultSlackMaxInFlight       = 64
	DefaultSlackMaxConnsPerClient = 16
)

// SlackLimits are the limits of the listener Slack reaches. Slack sends small
// requests and gives up on a reply after 3 s, so everything is tight: 5 s for
// the headers, 10 s for the whole request and for the reply, 30 s idle.
func SlackLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		MaxInFlight:       DefaultSlackMaxInFlight,
		MaxConnsPerClient: DefaultSlackMaxConnsPerClient,
	}
}

// ProbeLimits are the limits of the listener of /healthz, /readyz and
// /metrics, which only the kubelet and Prometheus reach (no Service exposes
// it to Slack's side). No request there has a body; /metrics may take a few
// seconds to write on a busy controller. No per-client cap: the kubelet and
// a scraper each come from one address.
func ProbeLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		MaxInFlight:       32,
	}
}

// Server is an http.Server for h with the limits l: the in-flight cap and
// the request deadline wrap h, the timeouts are the server's. Serve it on a
// listener from Listen, which adds the per-client cap.
func Server(h http.Handler, l Limits, exceeded func(string)) *http.Server {
	return &http.Server{
		Handler:           LimitInFlight(WithDeadline(h, l.WriteTimeout), l.MaxInFlight, exceeded),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// Listen listens on addr (TCP) with the per-client cap of l.
func Listen(addr string, l Limits, exceeded func(string)) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return LimitPerClient(ln, l.MaxConnsPerClient, exceeded), nil
}

// Serve serves srv on ln until ctx is done, then shuts it down (requests in
// flight get up to 5 s). It returns nil after a shutdown.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
