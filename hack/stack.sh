#!/usr/bin/env bash
# hack/stack.sh: the whole product on one machine, on top of hack/cluster/up.sh:
# the control plane (etcd, kube-apiserver, Tekton controller), a Redis, our
# config/ manifests, and our controller running out of cluster under its own
# ServiceAccount token (so config/'s RBAC is what it gets, not admin).
#
#   hack/stack.sh up                    everything up (idempotent)
#   hack/stack.sh down [--purge]        stop everything this script and up.sh started
#   hack/stack.sh start-controller      (re)start only our controller
#   hack/stack.sh stop-controller [--kill]
#   hack/stack.sh start-redis | stop-redis
#   hack/stack.sh kill-redis            SIGKILL our Redis (no shutdown save: the last second may be lost)
#   hack/stack.sh env                   print the variables tests and users need
#
# Env: CLUSTER_DIR (default .cache/cluster), REDIS_PORT (16379), CONTROLLER_HTTP_PORT (18090:
# the Slack endpoints), CONTROLLER_PROBES_PORT (18091: /healthz, /readyz, /metrics),
# CONTROLLER_ARGS (extra flags, e.g. --threads=4), plus the port variables of hack/lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_PORT="${REDIS_PORT:-16379}"
CONTROLLER_HTTP_PORT="${CONTROLLER_HTTP_PORT:-18090}"
CONTROLLER_PROBES_PORT="${CONTROLLER_PROBES_PORT:-18091}"
REDIS_DIR="$CLUSTER_DIR/redis"
NS=cicdstatemgr
SA=cicdstatemgr-controller
CONTROLLER_BIN="$BIN_DIR/cicdstatemgr-controller"
CLI_BIN="$BIN_DIR/cicdstatemgr"
SA_KUBECONFIG="$CLUSTER_DIR/controller.kubeconfig"
ENV_FILE="$CLUSTER_DIR/stack.env"

kc() { "$(kubectl_bin)" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

build_ours() {
  log "building cicdstatemgr and its controller into $BIN_DIR"
  mkdir -p "$BIN_DIR"
  (cd "$ROOT" && go build -o "$CLI_BIN" ./cmd/cicdstatemgr && go build -o "$CONTROLLER_BIN" ./cmd/controller)
}

start_redis() { REDIS_PERSIST=yes bash "$ROOT/hack/redis.sh" start "$REDIS_PORT" "$REDIS_DIR"; }
stop_redis() { bash "$ROOT/hack/redis.sh" stop "$REDIS_PORT" "$REDIS_DIR"; }

# kill_redis: SIGKILL the Redis started by start_redis (and a snapshot child it may have
# forked), as a crash would; only the pid of redis.pid when it runs redis-server.
kill_redis() {
  local pid exe child
  pid="$(cat "$REDIS_DIR/redis.pid" 2>/dev/null || true)"
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  # (Debian's redis-server is a link to redis-check-rdb)
  if [[ ! "$pid" =~ ^[0-9]+$ ]] || [[ "$(basename "$exe")" != redis-server* && "$(basename "$exe")" != redis-check* ]]; then
    log "no redis started by this stack runs (dir $REDIS_DIR); nothing to kill"
    return 0
  fi
  log "killing redis (SIGKILL, pid $pid)"
  for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill -KILL "$child" 2>/dev/null || true; done
  kill -KILL "$pid"
  # gone, or a zombie nobody reaped yet (then it no longer holds the port or the files)
  local start=$SECONDS
  while kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]; do
    ((SECONDS - start < 10)) || die "redis (pid $pid) still runs 10s after SIGKILL"
    sleep 0.05
  done
  rm -f "$REDIS_DIR/redis.pid"
}

# local_config prints config/'s ConfigMap and Secret pointed at the local Redis.
apply_config() {
  log "applying config/ (namespace, RBAC, configuration) for a controller out of cluster"
  for f in 100-namespace.yaml 200-serviceaccount.yaml 201-clusterrole.yaml 202-role.yaml 203-approvalgate-rbac.yaml \
    300-approvalgate-crd.yaml 302-config-logging.yaml 303-config-leader-election.yaml 600-approvalgate-policy.yaml; do
    kc apply -f "$ROOT/config/$f" >/dev/null
  done
  kc -n "$NS" create configmap config-cicdstatemgr --from-file=config.yaml=/dev/stdin --dry-run=client -o yaml <<YAML | kc apply -f - >/dev/null
cicdstatemgr:
  datasources:
    redis:
      host: 127.0.0.1
      port: $REDIS_PORT
      isPrimary: true
  slack:
    url: http://127.0.0.1:${ECHO_PORT:-18099}/slack
  trigger:
    url: http://127.0.0.1:${ECHO_PORT:-18099}/trigger
    headers:
      - name: x-cicdstatemgr-autotrigger-key
        value: "{{ secretData.trigger.token }}"
  templates:
    notify: |
      {"channel": "{{ channel }}", "text": "{{ notify.message|json_dumps:"strip" }}"}
    manual-choice: |
      {"channel": "{{ channel }}", "text": "{{ manualChoice.title|json_dumps:"strip" }}", "choices": {{ manualChoice.choices|tojson }}}
    respond: |
      {"text": "{{ respond.message|json_dumps:"strip" }}"}
YAML
  kc -n "$NS" create secret generic cicdstatemgr-secrets --from-file=secrets.yaml=/dev/stdin --dry-run=client -o yaml <<YAML | kc apply -f - >/dev/null
cicdstatemgr:
  datasources:
    redis:
      username: cicdstatemgr
      password: "123\$aBcZ"
  slack:
    token: local-demo-token
    signingSecret: local-signing-secret
  trigger:
    token: local-trigger-token
YAML
}

# sa_kubeconfig writes a kubeconfig that authenticates as our ServiceAccount.
sa_kubeconfig() {
  local token server ca
  token="$(kc -n "$NS" create token "$SA" --duration=24h)"
  server="$(kc config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$(kc config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
  cat >"$SA_KUBECONFIG" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: $server, certificate-authority-data: $ca}
users:
- name: $SA
  user: {token: $token}
contexts:
- name: $SA
  context: {cluster: local, user: $SA}
current-context: $SA
KC
  chmod 600 "$SA_KUBECONFIG"
}

start_controller() {
  if is_running cicdstatemgr-controller; then
    log "our controller already runs (pid $(pid_of cicdstatemgr-controller))"
    return 0
  fi
  [[ -x "$CONTROLLER_BIN" ]] || build_ours
  local port var
  for var in CONTROLLER_HTTP_PORT CONTROLLER_PROBES_PORT; do
    port="${!var}"
    if port_listening "$port"; then
      die "port $port is in use by another process (another stack's controller?): stop it or set $var"
    fi
  done
  sa_kubeconfig
  # Slack on --http-addr, health and metrics on --probe-addr (our listeners); knative's
  # own probe server (PROBES_PORT) and profiling server get ports of their own.
  START_BG_EXE="$CONTROLLER_BIN" start_bg cicdstatemgr-controller env \
    SYSTEM_NAMESPACE="$NS" METRICS_PROTOCOL=none \
    PROBES_PORT="${CONTROLLER_KNATIVE_PROBES_PORT:-$((CONTROLLER_PROBES_PORT + 200))}" \
    PROFILING_PORT="${CONTROLLER_PROFILING_PORT:-${PROFILING_PORT:-$((CONTROLLER_PROBES_PORT + 100))}}" \
    "$CONTROLLER_BIN" --kubeconfig "$SA_KUBECONFIG" --disable-ha \
    --http-addr "127.0.0.1:$CONTROLLER_HTTP_PORT" --probe-addr "127.0.0.1:$CONTROLLER_PROBES_PORT" ${CONTROLLER_ARGS:-}
  wait_for_http "http://127.0.0.1:$CONTROLLER_PROBES_PORT/readyz" 60 ||
    { tail -30 "$LOG_DIR/cicdstatemgr-controller.log" >&2; die "our controller did not become ready"; }
  log "our controller is ready (slack :$CONTROLLER_HTTP_PORT, probes and metrics :$CONTROLLER_PROBES_PORT, log $LOG_DIR/cicdstatemgr-controller.log)"
}

stop_controller() {
  if [[ "${1:-}" == "--kill" ]]; then
    local pid
    pid="$(pid_of cicdstatemgr-controller)"
    if [[ -n "$pid" ]] && is_running cicdstatemgr-controller; then
      log "killing our controller (SIGKILL, pid $pid)"
      kill -KILL "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$RUN_DIR/cicdstatemgr-controller.pid" "$RUN_DIR/cicdstatemgr-controller.bin"
  else
    stop_pid cicdstatemgr-controller 10
  fi
}

write_env() {
  cat >"$ENV_FILE" <<ENV
KUBECONFIG=$KUBECONFIG_FILE
CICDSTATEMGR_STACK_DIR=$CLUSTER_DIR
CICDSTATEMGR_REDIS_ADDR=127.0.0.1:$REDIS_PORT
CICDSTATEMGR_CONTROLLER_URL=http://127.0.0.1:$CONTROLLER_HTTP_PORT
CICDSTATEMGR_PROBES_URL=http://127.0.0.1:$CONTROLLER_PROBES_PORT
CICDSTATEMGR_CLI=$CLI_BIN
KUBECTL=$(kubectl_bin)
ENV
}

case "${1:-}" in
up)
  bash "$ROOT/hack/redis.sh" install
  bash "$ROOT/hack/cluster/up.sh"
  start_redis
  build_ours
  apply_config
  start_controller
  write_env
  log "stack is up. Use it with: export KUBECONFIG=$KUBECONFIG_FILE"
  ;;
down)
  stop_controller || true
  stop_redis || true
  bash "$ROOT/hack/cluster/down.sh" "${@:2}"
  ;;
start-controller) start_controller ;;
stop-controller) stop_controller "${2:-}" ;;
start-redis) start_redis ;;
stop-redis) stop_redis ;;
kill-redis) kill_redis ;;
apply-config) apply_config ;;
env) cat "$ENV_FILE" ;;
*) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
