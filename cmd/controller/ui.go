package main

import (
	"context"
	"flag"
	"log/slog"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/configwatch"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/webui"
)

// The web page (pkg/webui, docs/webui.md) is a third listener: people reach it
// through `kubectl port-forward` or an auth proxy, never Slack, and a flood of
// page views cannot slow the Slack endpoints or the probes.
var (
	uiAddr = flag.String("ui-addr", webui.DefaultAddr,
		"address of the web page of contexts and approval gates (docs/webui.md; viewers log in with a Kubernetes token); empty: no page")
	uiMaxConnsPerClient = flag.Int("ui-max-conns-per-client", webui.Limits().MaxConnsPerClient,
		"open connections of one client IP on --ui-addr (0: no limit; behind an auth proxy all viewers share its IP)")
)

// serveUI serves the web page on --ui-addr until ctx is done (nothing when
// the flag is empty). The page reads the contexts of the current store, asks
// the API server who a viewer is and what they may see with the controller's
// client kube, and writes decisions with clients built from cfg's server and
// CA and the viewer's own token.
func serveUI(ctx context.Context, src *configwatch.Source, kube kubernetes.Interface, cfg *rest.Config, exceeded func(string)) {
	if *uiAddr == "" {
		return
	}
	page := webui.New(webui.Options{
		Store: func() webui.Store {
			if st := src.Store(); st != nil {
				return uiStore{st}
			}
			return nil
		},
		Kube:         kube,
		ViewerClient: webui.ViewerClients(cfg),
		Log:          slog.Default(),
		Exceeded:     exceeded,
	})
	limits := webui.Limits()
	limits.MaxConnsPerClient = *uiMaxConnsPerClient
	serveHTTP(ctx, "ui", *uiAddr, page.Handler(), limits, exceeded)
}

// uiStore is the store as the page reads it.
type uiStore struct{ *store.Store }

func (s uiStore) Contexts(ctx context.Context, namespace string, limit int) ([]webui.ContextSummary, error) {
	cs, err := s.Store.Contexts(ctx, namespace, limit)
	out := make([]webui.ContextSummary, len(cs))
	for i, c := range cs {
		out[i] = webui.ContextSummary{ID: c.ID, Updated: c.Updated}
	}
	return out, err
}
