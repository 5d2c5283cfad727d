package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// The report of the scale-out rows (scaleout.go).

func mb(b int64) string { return mib(b >> 10) }

// perRun is a CPU time per CustomRun, in ms.
func perRun(d time.Duration, runs int) string {
	if runs == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)/float64(runs))
}

func (r *report) scaleSection(w func(string, ...any)) {
	s := r.scale
	if c := s.cost; c != nil {
		w("\n## Controller cost against the baseline controller: CPU per CustomRun and memory\n\n")
		w("%d CustomRuns through each controller, 100 in flight, in batches that alternate (ours: set and get in turn, %s; "+
			"the baseline: Copy, %s), kept until the end, then deleted. CPU is utime+stime of `/proc/<pid>/stat` read around each "+
			"controller's own batches (*whole window*: over all batches, where each also receives the other's CustomRuns from its "+
			"informer). Memory is read %s after the deletion, after the GC of a heap profile (knative's profiling server, on only "+
			"because the bench creates `config-observability` with `runtime-profiling: enabled`).\n\n",
			c.runs, c.oursPh.summary(), c.basePh.summary(), c.settle)
		w("| | CPU, own batches | per CustomRun | CPU, whole window | VmRSS with the runs | VmRSS after deletion | RssAnon | RssFile (binary) | heap in use | heap idle, kept | heap released | stacks | runtime other |\n")
		w("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		row := func(who string, cpu, all time.Duration, full int64, m procMem) {
			w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", who, cpu.Round(10*time.Millisecond), perRun(cpu, c.runs),
				all.Round(10*time.Millisecond), mb(full), mb(m.rss), mb(m.rssAnon), mb(m.rssFile), mb(m.heapInuse),
				mb(m.heapIdle-m.heapReleased), mb(m.heapReleased), mb(m.stack), mb(m.other))
		}
		row("cicdstatemgr", c.ours, c.oursAll, c.fullOurs, c.memOurs)
		row("baseline", c.base, c.baseAll, c.fullBase, c.memBase)
		w("| **ours ÷ baseline** | %s | | %s | %s | %s | %s | %s | %s | | | | |\n", x(ratio(c.ours, c.base)), x(ratio(c.oursAll, c.baseAll)),
			x(float64(c.fullOurs)/float64(c.fullBase)), x(float64(c.memOurs.rss)/float64(c.memBase.rss)),
			x(float64(c.memOurs.rssAnon)/float64(c.memBase.rssAnon)), x(float64(c.memOurs.rssFile)/float64(c.memBase.rssFile)),
			x(float64(c.memOurs.heapInuse)/float64(c.memBase.heapInuse)))
		for _, t := range []struct {
			who string
			m   procMem
		}{{"ours", c.memOurs}, {"the baseline's", c.memBase}} {
			if len(t.m.top) > 0 {
				w("\nHeap in use, %s, after the deletion (`go tool pprof -top -sample_index=inuse_space`, flat): %s.\n", t.who, strings.Join(t.m.top, "; "))
			}
		}
		if c.heapFile != "" {
			w("\nOur profile: `%s` (`go tool pprof -top %s`).\n", c.heapFile, c.heapFile)
		}
		for _, p := range []struct {
			who string
			p   cpuProfile
		}{{"ours (a set batch)", c.cpuOurs}, {"the baseline's (a Copy batch)", c.cpuBase}} {
			if len(p.p.top) > 0 {
				w("\nCPU, %s, first %d s (`go tool pprof -top -cum %s`): %s.\n", p.who, c.cpuSeconds, p.p.file, strings.Join(p.p.top, "; "))
			}
		}
	}
	if h := s.hot; h != nil {
		hs, ss := summarize(h.hot.lat), summarize(h.spread.lat)
		w("\n## Hot context: %d concurrent sets on one context against %d on %d contexts\n\n", h.width, h.width, h.width)
		w("%d rounds; in each, %d `set` CustomRuns created at once on %d contexts (*spread*), then %d created at once on one context (*hot*). "+
			"*Burst* is from the first create to the last done, averaged over the rounds. *Retries* are our store's optimistic "+
			"transactions (WATCH, MULTI/EXEC) tried again after losing a race to another writer of the same context "+
			"(`cicdstatemgr_store_tx_retries_total`, read from the controller's `/metrics` around each burst).\n\n",
			h.rounds, h.width, h.width, h.width)
		w("| | runs | burst | p50 | p95 | max | retries | retries per run |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, p := range []struct {
			what string
			st   stats
			wall time.Duration
			ret  float64
		}{{"spread (50 contexts)", ss, h.sprWall, h.sprRet}, {"hot (1 context)", hs, h.hotWall, h.hotRetries}} {
			w("| %s | %d | %s | %s | %s | %s | %.0f | %.2f |\n", p.what, p.st.n, ms(p.wall/time.Duration(h.rounds)), ms(p.st.p50), ms(p.st.p95), ms(p.st.max),
				p.ret, p.ret/float64(max(p.st.n, 1)))
		}
		w("| **hot ÷ spread** | | %s | %s | %s | %s | | |\n", x(ratio(h.hotWall, h.sprWall)), x(ratio(hs.p50, ss.p50)), x(ratio(hs.p95, ss.p95)), x(ratio(hs.max, ss.max)))
	}
	if len(s.replicas) > 0 {
		w("\n## Throughput with one and two controller replicas (100 in flight, op set)\n\n")
		w("Both with knative leader election (10 bucket Leases, config/303-config-leader-election.yaml), as config/ deploys them; "+
			"each right after the baseline at 100 in flight, in the order one, two, one replica (the two phases of one replica merged). "+
			"*Buckets*: how many bucket Leases each replica held after each phase (\"10\": one replica held all ten, the other was a hot standby). "+
			"On %d shared cores a second replica cannot add throughput (the API server and etcd are the limit, see the throughput "+
			"table): this row shows that it costs none (\"no worse\"), not scaling.\n\n", runtime.NumCPU())
		w("| replicas | buckets | runs | runs/s | baseline runs/s | ÷ baseline | p50 | p99 |\n|--:|---|--:|--:|--:|--:|--:|--:|\n")
		for _, p := range s.replicas {
			st := summarize(p.ph.lat)
			w("| %d | %s | %d | %.1f | %.1f | %s | %s | %s |\n", p.replicas, p.buckets, st.n, p.ph.perSecond(), p.base.perSecond(),
				x(p.ph.perSecond()/p.base.perSecond()), ms(st.p50), ms(st.p99))
		}
	}
}

// scaleTargets writes the targets of the scale-out rows.
func (r *report) scaleTargets(w func(string, ...any)) {
	s := r.scale
	if s == nil {
		return
	}
	if c := s.cost; c != nil {
		rc := ratio(c.ours, c.base)
		w("| controller CPU per CustomRun ≤ 1.3× the baseline's (%d runs each) | %s against %s: %s | %s |\n", c.runs,
			perRun(c.ours, c.runs), perRun(c.base, c.runs), x(rc), met(rc <= 1.3))
		rm := float64(c.memOurs.rss) / float64(c.memBase.rss)
		w("| controller RSS after %d CustomRuns and their deletion ≤ 1.25× the baseline's | %s against %s: %s | %s |\n", c.runs,
			mb(c.memOurs.rss), mb(c.memBase.rss), x(rm), met(rm <= 1.25))
	}
	if h := s.hot; h != nil {
		rh := ratio(h.hotWall, h.sprWall)
		w("| hot context: %d concurrent sets on one context ≤ 2× %d on %d contexts (burst) | %s against %s: %s; %.2f retries per run | %s |\n",
			h.width, h.width, h.width, ms(h.hotWall/time.Duration(h.rounds)), ms(h.sprWall/time.Duration(h.rounds)), x(rh),
			h.hotRetries/float64(max(len(h.hot.lat), 1)), met(rh <= 2))
	}
	if len(s.replicas) == 2 {
		one, two := s.replicas[0].ph.perSecond(), s.replicas[1].ph.perSecond()
		w("| two replicas no worse than one at 100 in flight (within 10 %%; not scaling: %d shared cores) | %.1f/s against %.1f/s: %s | %s |\n",
			runtime.NumCPU(), two, one, x(two/one), met(two/one >= 0.9))
	}
}
