#!/usr/bin/env bash
# hack/bench.sh: the benchmarks (make bench). Brings up a stack of its own
# (hack/stack.sh with CLUSTER_DIR=.cache/bench-cluster and ports distinct from
# the demo's and the e2e's), runs the CLI benchmarks and bench/ (the driver),
# writes bench/results.md and bench/latency.png, and takes the stack down
# again, on failure too.
#
#   make bench                  full run (~15 min)
#   BENCH_QUICK=1 make bench    fewer iterations (a few minutes)
#   BENCH_KEEP=1 ...            leave the stack running afterwards (for debugging)
#   BENCH_ONLY=hostile make bench   only the hostile-neighbour row (warm-up, set alone,
#                               beside hostile CustomRuns, alone again; ~2 min with
#                               BENCH_QUICK=1); no CLI benchmarks, and the results go to
#                               .cache/bench-cluster/results.md, not bench/
#   BENCH_HOSTILE=bombs,hanging,slow  the kinds of hostile load (any subset; default all)
#   BENCH_ONLY=scaleout make bench  only the scale-out rows (bench/scaleout.go: CPU and
#                               RSS against the baseline's, hot context, one and two
#                               replicas) and the CLI benchmarks; results as for hostile
#   BENCH_ONLY=cost make bench  only the CPU and memory row of scaleout (with CPU profiles of
#                               both controllers); results as for hostile
#   BENCH_ONLY=cloudevents make bench  only the dead-sink row (bench/cloudevents.go: set
#                               with no CloudEvents sink, a dead one, none again); as hostile
#
# Logs of the stack: .cache/bench-cluster/logs/ (kept until the next run).
CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)/.cache/bench-cluster"
export CLUSTER_DIR
export ETCD_CLIENT_PORT=43790 ETCD_PEER_PORT=43800 APISERVER_PORT=36443 TEKTON_PORT_BASE=18300
export REDIS_PORT=16381 CONTROLLER_HTTP_PORT=18095 CONTROLLER_PROBES_PORT=18096 ECHO_PORT=18097
# the baseline controller's probes/profiling; our controller's knative profiling
# server (hack/stack.sh leaves it on the default :8008, which another stack may hold)
export BASELINE_PROBES_PORT=18390 BASELINE_PROFILING_PORT=18391 PROFILING_PORT=18392
export CONTROLLER_ARGS=""
BENCH_STARTED="$(date +%s)"
export BENCH_STARTED
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUICK=""
[[ "${BENCH_QUICK:-0}" != 0 && -n "${BENCH_QUICK:-}" ]] && QUICK=1
BENCH_BIN="$CLUSTER_DIR/bin"
CLI_OUT="$CLUSTER_DIR/cli-bench.txt"
# a partial run (BENCH_ONLY) must not replace the published results
OUT_DIR="$ROOT/bench"
[[ -n "${BENCH_ONLY:-}" ]] && OUT_DIR="$CLUSTER_DIR"
export BENCH_ONLY="${BENCH_ONLY:-}"

stop_baseline() {
  local f="$RUN_DIR/bench-baseline.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" == "$BENCH_BIN/bench-baseline" ]]; then
    log "stopping the baseline controller (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

cleanup() {
  local rc=$?
  stop_baseline || true
  if [[ -n "${BENCH_KEEP:-}" ]]; then
    log "BENCH_KEEP is set: the stack keeps running (stop it: CLUSTER_DIR=$CLUSTER_DIR ... hack/stack.sh down)"
  else
    bash "$ROOT/hack/stack.sh" down || true
  fi
  log "bench finished with exit code $rc (logs: $LOG_DIR)"
  exit "$rc"
}

cd "$ROOT"
log "stack dir $CLUSTER_DIR; mode: $([[ -n "$QUICK" ]] && echo quick || echo full)"
# a fresh stack every run: stop whatever a previous run left, forget its state
stop_baseline || true
bash "$ROOT/hack/stack.sh" down --purge
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$BENCH_BIN" "$LOG_DIR"

log "building the bench driver and the baseline controller"
go build -o "$BENCH_BIN/bench" ./bench
go build -o "$BENCH_BIN/bench-baseline" ./bench/baseline

if [[ -z "$BENCH_ONLY" || "$BENCH_ONLY" == scaleout ]]; then
  log "CLI benchmarks (no stack needed): go test -bench 'CLIGet|ProcessStart' ./bench"
  iters=500
  [[ -n "$QUICK" ]] && iters=100
  go test -run '^$' -bench 'BenchmarkCLIGet|BenchmarkProcessStart' -benchtime "${iters}x" -count 1 ./bench | tee "$CLI_OUT"
else
  log "BENCH_ONLY=$BENCH_ONLY: no CLI benchmarks; results go to $OUT_DIR/results.md"
  : >"$CLI_OUT"
fi

log "bringing up the bench stack"
bash "$ROOT/hack/stack.sh" up

log "running the driver"
timeout --signal=TERM 40m "$BENCH_BIN/bench" -out "$OUT_DIR" -cli-bench "$CLI_OUT" -baseline-bin "$BENCH_BIN/bench-baseline"
