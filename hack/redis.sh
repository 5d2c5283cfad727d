#!/usr/bin/env bash
# hack/redis.sh: a local Redis for development and tests.
#
#   hack/redis.sh install             install redis-server and redis-cli (apt-get) when missing
#   hack/redis.sh start <port> [dir]  start a daemon on 127.0.0.1:<port> (idempotent)
#   hack/redis.sh stop <port> [dir]   stop the daemon this script started on <port>
#   hack/redis.sh status <port> [dir] say whether it runs
#
# The daemon has the ACL user cicdstatemgr (password 123$aBcZ, all commands and keys; like
# the project's fixtures) and the default user switched off. It keeps no data on disk.
# dir (default $ROOT/.cache/redis-<port>) holds redis.conf, redis.pid and redis.log.
# Only a redis this script started (pid file in dir, process is redis-server) is ever
# stopped; any other redis on the machine is left alone.
#
# Environment: REDIS_USER, REDIS_PASSWORD override the ACL user; REDIS_EXTRA_CONF adds lines
# to redis.conf (hack/stack.sh: cluster-enabled, replicaof, sentinel monitor); REDIS_SENTINEL=yes
# runs it as a sentinel (redis-server --sentinel, as Debian's redis-sentinel is); REDIS_PERSIST=yes keeps
# the data in an RDB snapshot in dir (written every second or two, and at shutdown), so a stop and
# start loses nothing. (Not an append-only file: Redis 7.0 cannot replay MULTI/EXEC from
# an AOF when the default user is off.)

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_USER="${REDIS_USER:-cicdstatemgr}"
REDIS_PASSWORD="${REDIS_PASSWORD:-123\$aBcZ}"

usage() {
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

check_port() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] && (($1 > 0 && $1 < 65536)) || die "invalid port '${1:-}' (want 1-65535)"
}

redis_dir() { echo "${2:-$CACHE/redis-$1}"; }

# our_pid DIR: the pid in DIR/redis.pid when that process is alive and is a redis-server.
our_pid() {
  local dir="$1" pid exe
  [[ -f "$dir/redis.pid" ]] || return 1
  pid="$(cat "$dir/redis.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ "$(basename "$exe")" == redis-server* || "$(basename "$exe")" == redis-check* ]] || return 1
  echo "$pid"
}

cmd_install() {
  # redis-cli (Debian: redis-tools, a dependency of redis-server) creates the test
  # clusters (redis-cli --cluster create); sentinels are redis-server --sentinel.
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    log "redis-server already installed: $(command -v redis-server) ($(redis-server --version | awk '{print $3}' | sed 's/^v=//'))"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "redis-server is missing and apt-get is not available: install Redis >= 6 (with TLS support) by hand"
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "redis-server is missing: run as root: apt-get install -y redis-server"
    sudo="sudo"
  fi
  log "redis-server is missing: installing it with apt-get (Debian package redis-server)"
  # apt-get update only once: skip it when package lists are already present.
  if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
    $sudo apt-get update
  fi
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends redis-server; then
    log "apt-get install failed; refreshing package lists and retrying once"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends redis-server
  fi
  # The Debian package may start a system service; we do not use it and leave it alone.
  command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after install"
  command -v redis-cli >/dev/null 2>&1 || die "redis-cli still not on PATH after install (Debian package redis-tools)"
  log "installed $(command -v redis-server) ($(redis-server --version | awk '{print $3}' | sed 's/^v=//'))"
}

cmd_start() {
  local port="${1:-}"
  check_port "$port"
  local dir pid
  dir="$(redis_dir "$port" "${2:-}")"
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found on PATH: run 'hack/redis.sh install' (or: apt-get install -y redis-server)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)"
  if pid="$(our_pid "$dir")"; then
    log "redis already running on 127.0.0.1:$port (pid $pid, dir $dir)"
    return 0
  fi
  if port_listening "$port"; then
    die "port $port is already in use by another process (not started by this script); pick another port"
  fi
  # The config file carries the password, so keep it private.
  (
    umask 077
    cat >"$dir/redis.conf" <<EOF
# written by hack/redis.sh
bind 127.0.0.1
port $port
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
$(if [[ "${REDIS_PERSIST:-no}" == yes ]]; then echo 'save 1 1'; else echo 'save ""'; fi)
appendonly no
protected-mode yes
user default off
user $REDIS_USER on >$REDIS_PASSWORD ~* &* +@all
${REDIS_EXTRA_CONF:-}
EOF
  )
  rm -f "$dir/redis.pid"
  local mode=()
  [[ "${REDIS_SENTINEL:-no}" == yes ]] && mode=(--sentinel)
  redis-server "$dir/redis.conf" "${mode[@]}" || die "redis-server failed to start; see $dir/redis.log"
  local start=$SECONDS
  until pid="$(our_pid "$dir")" && port_open "$port"; do
    if ((SECONDS - start >= 15)); then
      tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
      die "redis did not come up on 127.0.0.1:$port within 15s; see $dir/redis.log"
    fi
    sleep 0.1
  done
  log "redis running on 127.0.0.1:$port (pid $pid, user $REDIS_USER, dir $dir)"
}

cmd_stop() {
  local port="${1:-}"
  check_port "$port"
  local dir pid start
  dir="$(redis_dir "$port" "${2:-}")"
  if ! pid="$(our_pid "$dir")"; then
    log "no redis started by this script runs on port $port (dir $dir); nothing to stop"
    rm -f "$dir/redis.pid"
    return 0
  fi
  log "stopping redis on port $port (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - start >= 10)); then
      log "redis (pid $pid) did not exit within 10s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$dir/redis.pid"
  log "stopped redis on port $port"
}

cmd_status() {
  local port="${1:-}"
  check_port "$port"
  local dir pid
  dir="$(redis_dir "$port" "${2:-}")"
  if pid="$(our_pid "$dir")"; then
    echo "running on 127.0.0.1:$port (pid $pid, dir $dir)"
  else
    echo "not running (port $port, dir $dir)"
    return 1
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  -h | --help | help | "") usage ;;
  *) log "unknown command '$1'"; usage ;;
esac
