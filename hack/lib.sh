# shellcheck shell=bash
# Shared helpers for the hack/ scripts. Source it; do not execute it.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
#
# Provides: ROOT, CACHE, BIN_DIR, SRC_DIR, CLUSTER_DIR and its sub-dirs, pinned versions,
# log/die/step helpers (timestamps + elapsed seconds), wait_for_port / wait_for_http,
# pid-file start/stop helpers, port helpers, and kubectl resolution.

set -euo pipefail

# ---------------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------------

# ROOT: the module root (directory of go.mod). hack/lib.sh lives in $ROOT/hack.
if [[ -z "${ROOT:-}" ]]; then
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
fi
if [[ ! -f "$ROOT/go.mod" ]]; then
  echo "hack/lib.sh: cannot find go.mod in ROOT=$ROOT" >&2
  exit 1
fi
export ROOT

CACHE="${CACHE:-$ROOT/.cache}"
BIN_DIR="$CACHE/bin"
SRC_DIR="$CACHE/src"
CLUSTER_DIR="${CLUSTER_DIR:-$CACHE/cluster}"
PKI_DIR="$CLUSTER_DIR/pki"
RUN_DIR="$CLUSTER_DIR/run"
LOG_DIR="$CLUSTER_DIR/logs"
KUBECONFIG_FILE="$CLUSTER_DIR/kubeconfig"
export CACHE BIN_DIR SRC_DIR CLUSTER_DIR PKI_DIR RUN_DIR LOG_DIR KUBECONFIG_FILE

# ---------------------------------------------------------------------------------------------
# Pinned versions of the local control plane (built by hack/cluster/build.sh)
# ---------------------------------------------------------------------------------------------

ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KUBE_VERSION="${KUBE_VERSION:-v1.35.8}"          # k8s.io/kubernetes
# Staging modules (k8s.io/api, ...) of KUBE_VERSION: v1.35.8 -> v0.35.8
KUBE_STAGING_VERSION="v0${KUBE_VERSION#v1}"

# Tekton version: whatever our go.mod requires (falls back to v1.15.1).
tekton_version_from_gomod() {
  local v
  v="$(awk '$1 == "github.com/tektoncd/pipeline" && $2 ~ /^v/ {print $2; exit}
            $1 == "require" && $2 == "github.com/tektoncd/pipeline" {print $3; exit}' "$ROOT/go.mod")"
  echo "${v:-v1.15.1}"
}
TEKTON_VERSION="${TEKTON_VERSION:-$(tekton_version_from_gomod)}"

ETCD_BIN="$BIN_DIR/etcd-$ETCD_VERSION"
KUBE_APISERVER_BIN="$BIN_DIR/kube-apiserver-$KUBE_VERSION"
KUBECTL_CACHED_BIN="$BIN_DIR/kubectl-$KUBE_VERSION"
TEKTON_CONTROLLER_BIN="$BIN_DIR/tekton-controller-$TEKTON_VERSION"
export ETCD_VERSION KUBE_VERSION KUBE_STAGING_VERSION TEKTON_VERSION
export ETCD_BIN KUBE_APISERVER_BIN KUBECTL_CACHED_BIN TEKTON_CONTROLLER_BIN

# ---------------------------------------------------------------------------------------------
# Ports (keep free for others: redis 16379/16380, our controller 18080-18099)
# ---------------------------------------------------------------------------------------------

ETCD_CLIENT_PORT="${ETCD_CLIENT_PORT:-23790}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${APISERVER_PORT:-16443}"
# Tekton controller probes/profiling: first free ports from here on (18100-18199).
TEKTON_PORT_BASE="${TEKTON_PORT_BASE:-18100}"
export ETCD_CLIENT_PORT ETCD_PEER_PORT APISERVER_PORT TEKTON_PORT_BASE

# ---------------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------------

_SCRIPT_NAME="$(basename "${0:-hack}")"

# log MSG... : "[hh:mm:ss +Ns script] MSG" on stderr (elapsed = seconds since the script began)
log() {
  printf '[%s +%ss %s] %s\n' "$(date +%H:%M:%S)" "$SECONDS" "$_SCRIPT_NAME" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Waiting
# ---------------------------------------------------------------------------------------------

# port_open PORT [HOST]: true when something accepts TCP connections on HOST:PORT.
port_open() {
  local port="$1" host="${2:-127.0.0.1}"
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# port_listening PORT: true when any local socket listens on PORT (any address).
port_listening() {
  local port="$1"
  if command -v ss >/dev/null 2>&1; then
    ss -Hltn "sport = :$port" 2>/dev/null | grep -q .
  else
    port_open "$port"
  fi
}

# free_port_from START [END]: print the first port in [START, END] nobody listens on.
free_port_from() {
  local p="$1" end="${2:-$(($1 + 99))}"
  while ((p <= end)); do
    if ! port_listening "$p"; then
      echo "$p"
      return 0
    fi
    p=$((p + 1))
  done
  return 1
}

# wait_for_port PORT [TIMEOUT_S] [HOST]
wait_for_port() {
  local port="$1" timeout="${2:-60}" host="${3:-127.0.0.1}" start=$SECONDS
  until port_open "$port" "$host"; do
    if ((SECONDS - start >= timeout)); then
      log "timed out after ${timeout}s waiting for $host:$port"
      return 1
    fi
    sleep 0.2
  done
}

# wait_for_http URL [TIMEOUT_S] [extra curl args...]: until URL answers 2xx.
wait_for_http() {
  local url="$1" timeout="${2:-60}" start=$SECONDS
  shift 2 || shift $#
  until curl -fsS -o /dev/null --max-time 5 "$@" "$url" 2>/dev/null; do
    if ((SECONDS - start >= timeout)); then
      log "timed out after ${timeout}s waiting for $url"
      curl -sS --max-time 5 "$@" "$url" >&2 || true
      return 1
    fi
    sleep 0.3
  done
}

# wait_for_log FILE PATTERN [TIMEOUT_S] [PID]: until FILE contains PATTERN (grep -E);
# fails early if PID is given and the process exits.
wait_for_log() {
  local file="$1" pattern="$2" timeout="${3:-60}" pid="${4:-}" start=$SECONDS
  until grep -Eq "$pattern" "$file" 2>/dev/null; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      log "process $pid exited while waiting for /$pattern/ in $file"
      return 1
    fi
    if ((SECONDS - start >= timeout)); then
      log "timed out after ${timeout}s waiting for /$pattern/ in $file"
      return 1
    fi
    sleep 0.3
  done
}

# ---------------------------------------------------------------------------------------------
# Processes started from pid files
# ---------------------------------------------------------------------------------------------

# pid_of NAME: print the pid recorded in $RUN_DIR/NAME.pid (empty if none).
pid_of() {
  local f="$RUN_DIR/$1.pid"
  if [[ -f "$f" ]]; then cat "$f"; fi
}

# is_running NAME: the pid in NAME.pid is alive AND still runs the binary recorded in
# NAME.bin (guards against a recycled pid).
is_running() {
  local name="$1" pid bin
  pid="$(pid_of "$name")"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  bin="$(cat "$RUN_DIR/$name.bin" 2>/dev/null || true)"
  [[ -n "$bin" ]] || return 0
  # a rebuilt binary shows as "<path> (deleted)" for a process started before the rebuild
  local exe
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ "${exe% (deleted)}" == "$bin" ]]
}

# start_bg NAME BIN [ARGS...]: start BIN detached (own session), stdout+stderr appended to
# $LOG_DIR/NAME.log, pid in $RUN_DIR/NAME.pid. Extra environment: pass via `env` in front,
# i.e. start_bg NAME env A=b BIN ... ; the binary recorded for is_running is the real one
# (set START_BG_EXE to override).
start_bg() {
  local name="$1"
  shift
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  local logf="$LOG_DIR/$name.log"
  printf '\n===== %s start: %s\n' "$(date -Is)" "$*" >>"$logf"
  setsid "$@" </dev/null >>"$logf" 2>&1 &
  local pid=$!
  echo "$pid" >"$RUN_DIR/$name.pid"
  local exe="${START_BG_EXE:-}"
  if [[ -z "$exe" ]]; then
    # last resort: the first argument that is an executable file path
    local a
    for a in "$@"; do
      if [[ "$a" == /* && -x "$a" && -f "$a" ]]; then exe="$a"; fi
      [[ -n "$exe" ]] && break
    done
  fi
  if [[ -n "$exe" ]]; then readlink -f "$exe" >"$RUN_DIR/$name.bin"; else rm -f "$RUN_DIR/$name.bin"; fi
  log "started $name (pid $pid), log: $logf"
}

# stop_pid NAME [TIMEOUT_S]: SIGTERM the pid of NAME.pid, SIGKILL after TIMEOUT_S, remove
# the pid file. Only touches the recorded pid, and only if it still runs the recorded binary.
stop_pid() {
  local name="$1" timeout="${2:-15}" pid start
  pid="$(pid_of "$name")"
  if [[ -z "$pid" ]]; then
    log "$name: not running (no pid file)"
    return 0
  fi
  if ! is_running "$name"; then
    log "$name: not running (stale pid $pid)"
    rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.bin"
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - start >= timeout)); then
      log "$name did not exit within ${timeout}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.bin"
  log "stopped $name"
}

# ---------------------------------------------------------------------------------------------
# kubectl
# ---------------------------------------------------------------------------------------------

# kubectl_bin: the kubectl on PATH, else the one build.sh built into the cache.
kubectl_bin() {
  if [[ -x "$KUBECTL_CACHED_BIN" && "${PREFER_CACHED_KUBECTL:-0}" == 1 ]]; then
    echo "$KUBECTL_CACHED_BIN"
  elif command -v kubectl >/dev/null 2>&1; then
    command -v kubectl
  elif [[ -x "$KUBECTL_CACHED_BIN" ]]; then
    echo "$KUBECTL_CACHED_BIN"
  else
    return 1
  fi
}

# k ARGS...: kubectl against the local cluster.
k() {
  "$(kubectl_bin)" --kubeconfig "$KUBECONFIG_FILE" "$@"
}
