package main

// The dead-sink row (issue 14): CloudEvents are sent off the op's path, so a
// sink that never answers must not slow ops. The latency of `set` CustomRuns
// with no sink and with config.yaml's cloudEvents.sink pointing at a dead sink
// (it accepts connections and never answers: each send holds the emitter's
// worker for its whole timeout, the worst a sink can do), in alternating
// blocks (none, dead, dead, none, ...) so that the drift of a shared machine
// falls on both alike, all in one run.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// sinkBlocks is the number of blocks of each kind.
const sinkBlocks = 5

// sinkResult is what the dead-sink row measured.
type sinkResult struct {
	none, dead *phaseResult
	// events while the dead sink was configured, from the controller's metrics
	sent, failed, dropped, queued float64
}

// deadSink runs the row: runs set CustomRuns with no sink and runs with the
// dead one, one at a time, in blocks of runs/sinkBlocks; after each switch of
// config.yaml a few unmeasured runs let the reloaded engine warm up.
func (c *cluster) deadSink(ctx context.Context, runs int, rep *report) (err error) {
	s := &sinkResult{}
	rep.sink = s
	sink, err := startDeadSink()
	if err != nil {
		return err
	}
	defer sink.Close()
	original, withSink, err := c.sinkConfigs(ctx, "http://"+sink.Addr().String()+"/events")
	if err != nil {
		return err
	}
	defer func() {
		if rerr := c.writeConfig(ctx, original, 0); err == nil {
			err = rerr
		}
	}()
	before, _ := c.eventCounts(ctx)
	k := max(runs/sinkBlocks, 1)
	for b := range 2 * sinkBlocks {
		dead := b%4 == 1 || b%4 == 2 // none, dead, dead, none, none, dead, ...
		text, configured, name, into := original, 0.0, "none", &s.none
		if dead {
			text, configured, name, into = withSink, 1, "dead", &s.dead
		}
		if err := c.writeConfig(ctx, text, configured); err != nil {
			return err
		}
		if _, err := c.phase(ctx, fmt.Sprintf("sink-warm-%d", b), opSet, 1, 3); err != nil {
			return err
		}
		ph, err := c.phase(ctx, fmt.Sprintf("sink-%s-%d", name, b), opSet, 1, k)
		if *into == nil {
			*into = ph
		} else {
			(*into).merge(ph)
		}
		if err != nil {
			return err
		}
	}
	after, _ := c.eventCounts(ctx)
	s.sent, s.failed, s.dropped, s.queued = after["sent"]-before["sent"], after["failed"]-before["failed"], after["dropped"]-before["dropped"], after["queued"]
	log.Printf("set, no sink: %s", s.none.summary())
	log.Printf("set, dead sink: %s (events: %v sent, %v failed, %v dropped, %v queued)", s.dead.summary(), s.sent, s.failed, s.dropped, s.queued)
	return nil
}

// startDeadSink listens on loopback, accepts connections and never answers.
func startDeadSink() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, conn)
		}
	}()
	return ln, nil
}

// sinkConfigs returns config.yaml as it is and with cloudEvents.sink set to url.
func (c *cluster) sinkConfigs(ctx context.Context, url string) (original, withSink string, err error) {
	cm, err := c.kube.CoreV1().ConfigMaps("cicdstatemgr").Get(ctx, "config-cicdstatemgr", metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	original = cm.Data["config.yaml"]
	var doc map[string]map[string]any
	if err := yaml.Unmarshal([]byte(original), &doc); err != nil || doc["cicdstatemgr"] == nil {
		return "", "", fmt.Errorf("config.yaml of config-cicdstatemgr: %v", err)
	}
	doc["cicdstatemgr"]["cloudEvents"] = map[string]any{"sink": url}
	text, err := yaml.Marshal(doc)
	return original, string(text), err
}

// writeConfig writes config.yaml and waits until the controller has reloaded
// it: cicdstatemgr_cloudevents_sink_configured equals configured.
func (c *cluster) writeConfig(ctx context.Context, text string, configured float64) error {
	cms := c.kube.CoreV1().ConfigMaps("cicdstatemgr")
	cm, err := cms.Get(ctx, "config-cicdstatemgr", metav1.GetOptions{})
	if err != nil {
		return err
	}
	if cm.Data["config.yaml"] != text {
		cm.Data["config.yaml"] = text
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m, err := c.eventCounts(ctx); err == nil && m["configured"] == configured {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the controller did not pick up config.yaml's cloudEvents.sink within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eventCounts reads the CloudEvents metrics of our controller, all types
// added up: sent, failed, dropped, queued, configured.
func (c *cluster) eventCounts(ctx context.Context) (map[string]float64, error) {
	kv, err := readEnvFile(filepath.Join(c.env.clusterDir, "stack.env"))
	if err != nil {
		return nil, err
	}
	text, err := httpGet(ctx, kv["CICDSTATEMGR_PROBES_URL"]+"/metrics")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, l := range strings.Split(text, "\n") {
		name, rest, ok := strings.Cut(l, "cicdstatemgr_cloudevents_")
		if !ok || name != "" {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		v, err := strconv.ParseFloat(rest[i+1:], 64)
		if err != nil {
			continue
		}
		key, _, _ := strings.Cut(rest[:i], "{") // sent_total{type="..."}: sent
		key = strings.TrimSuffix(key, "_total")
		key = strings.TrimPrefix(key, "sink_")
		out[key] += v
	}
	return out, nil
}

// sinkSection writes the dead-sink table.
func (r *report) sinkSection(w func(string, ...any)) {
	s := r.sink
	if s == nil || s.none == nil || s.dead == nil {
		return
	}
	w("\n## CloudEvents: set latency with no sink and with a dead sink\n\n")
	w("One `set` CustomRun at a time, %d runs with no sink and %d with config.yaml's `cloudEvents.sink` at a sink on loopback that accepts "+
		"connections and never answers (every send waits out its 5 s timeout, then is retried), in alternating blocks of %d "+
		"(none, dead, dead, none, ...; after each switch of config.yaml 3 unmeasured runs). Each set writes a history entry, so each "+
		"emits one `dev.cicdstatemgr.context.changed` event.\n\n", s.none.n(), s.dead.n(), max(r.sizes.hostileRuns/sinkBlocks, 1))
	w("| sink | runs | p50 | p95 | p99 | failed |\n|---|--:|--:|--:|--:|--:|\n")
	for _, p := range []struct {
		name string
		ph   *phaseResult
	}{{"none", s.none}, {"**dead**", s.dead}} {
		st := summarize(p.ph.lat)
		w("| %s | %d | %s | %s | %s | %d |\n", p.name, st.n, ms(st.p50), ms(st.p95), ms(st.p99), p.ph.failed+p.ph.timedOut+p.ph.errors)
	}
	w("\nEvents while the dead sink was set: %.0f sent, %.0f failed after their attempts, %.0f dropped (queue full), %.0f still queued at the end.\n",
		s.sent, s.failed, s.dropped, s.queued)
}

// sinkTarget writes the dead-sink target line.
func (r *report) sinkTarget(w func(string, ...any)) {
	s := r.sink
	if s == nil || s.none == nil || s.dead == nil {
		return
	}
	none, dead := summarize(s.none.lat), summarize(s.dead.lat)
	rt := ratio(dead.p50, none.p50)
	w("| set with a dead CloudEvents sink: p50 ≤ 1.1× with no sink (same run) | %s dead sink, %s no sink: %s | %s |\n",
		ms(dead.p50), ms(none.p50), x(rt), met(rt <= 1.1 && s.dead.failed+s.dead.timedOut+s.dead.errors == 0))
}
