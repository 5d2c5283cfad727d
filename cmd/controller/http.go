package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/configwatch"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/handlers"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/slack"
)

// newMux serves health, metrics and Slack interactions (which decide gates). The Slack
// handler is built per request from the current configuration, so a new
// signing secret applies without a restart.
func newMux(reg *prometheus.Registry, src *configwatch.Source, log *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if _, _, err := src.Current(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
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
	mux.Handle("/slack/", interactive)
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
