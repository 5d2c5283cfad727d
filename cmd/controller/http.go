package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/configwatch"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/slack"
)

// The controller serves two listeners (docs/security.md, "HTTP server"): the Slack
// endpoints on --http-addr, which a Service exposes to Slack's side, and health and
// metrics on --probe-addr, which only the kubelet and Prometheus reach. Keeping them
// apart means a flood of requests to the Slack port cannot fail the probes or hide the
// metrics, and nothing but the Slack routes is reachable from outside.

// newProbeMux serves /healthz, /readyz and /metrics; every other path is 404.
func newProbeMux(reg *prometheus.Registry, src *configwatch.Source, log *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	mux.Handle("/readyz", readyz(func() error { _, _, err := src.Current(); return err }, log))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// readyz answers "ok" while a valid configuration is loaded, else 503 "not ready".
// The reason names configuration keys and may quote their values, so it goes to the
// log only (once each time it changes, not at every probe), never to the response.
func readyz(ready func() error, log *slog.Logger) http.HandlerFunc {
	var mu sync.Mutex
	lastReason := ""
	return func(w http.ResponseWriter, _ *http.Request) {
		err := ready()
		reason := ""
		if err != nil {
			reason = err.Error()
		}
		mu.Lock()
		changed := reason != lastReason
		lastReason = reason
		mu.Unlock()
		if err != nil {
			if changed {
				log.Warn("not ready", "reason", reason)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready"))
			return
		}
		w.Write([]byte("ok"))
	}
}

// newSlackMux serves only the Slack routes (slack.PathInteractions,
// slack.PathCommands); every other path is 404. The Slack handler is built per
// request from the current configuration, so a new signing secret or body budget
// applies without a restart. exceeded counts the requests the handler refuses by a
// limit (the body cap).
func newSlackMux(src *configwatch.Source, log *slog.Logger, exceeded func(string)) *http.ServeMux {
	mux := http.NewServeMux()
	interactive := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		eng, cfg, err := src.Current()
		if err != nil || eng.Gates == nil {
			http.Error(w, "not configured yet", http.StatusServiceUnavailable)
			return
		}
		h := &slack.Handler{
			Gates:         eng.Gates,
			SigningSecret: func() string { return cfg.SecretStringAt("slack.signingSecret") },
			Clock:         time.Now,
			Log:           log,
			MaxBodyBytes:  cfg.Budgets().SlackBodyBytes,
			Exceeded:      exceeded,
			Forward: func(_ context.Context, payload []byte) error {
				// Slack gives up after 3 s: forward in the background.
				headers, err := handlers.NewRunner(nil, eng.Templates, log).TriggerHeaders(cfg, document.NewMap())
				if err != nil {
					return err
				}
				go forwardToTrigger(cfg.StringAt("trigger.url"), headers, payload, log)
				return nil
			},
		}
		h.ServeHTTP(w, req)
	})
	mux.Handle(slack.PathInteractions, interactive)
	mux.Handle(slack.PathCommands, interactive)
	return mux
}

// forwardToTrigger posts a Slack click that answers no gate to the trigger
// URL (a Tekton Triggers EventListener), as the original's
// slack-payload-handler + EventListener flow did.
func forwardToTrigger(url string, headers []httpclient.Header, payload []byte, log *slog.Logger) {
	if url == "" {
		log.Info("a Slack action matched no waiting choice and no trigger.url is configured: ignored")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &httpclient.Client{}
	if _, err := c.Do(ctx, httpclient.Request{URL: url, Headers: headers, Body: bytes.Clone(payload)}); err != nil {
		log.Warn("forwarding a Slack action to the trigger URL failed", "error", err)
	}
}
