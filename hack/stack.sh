#!/usr/bin/env bash
# hack/stack.sh: the whole product on one machine, on top of hack/cluster/up.sh:
# the control plane (etcd, kube-apiserver, Tekton controller), a Redis, our
# config/ manifests, and our controller running out of cluster under its own
# ServiceAccount token (so config/'s RBAC is what it gets, not admin).
#
#   hack/stack.sh up                    everything up (idempotent)
#   hack/stack.sh down [--purge]        stop everything this script and up.sh started
#   hack/stack.sh start-controller      start our controller (CONTROLLER_REPLICAS of it)
#   hack/stack.sh stop-controller [--kill] [I]   stop every replica, or replica I only
#   hack/stack.sh start-redis | stop-redis
#   hack/stack.sh kill-redis            SIGKILL our Redis (no shutdown save: the last second may be lost)
#                                       (with REDIS_TOPOLOGY=cluster these three act on every node,
#                                       with sentinel on the primary and the replica; down stops the sentinels)
#   hack/stack.sh env                   print the variables tests and users need
#
# Env: CLUSTER_DIR (default .cache/cluster), REDIS_PORT (16379), CONTROLLER_HTTP_PORT (18090:
# the Slack endpoints), CONTROLLER_PROBES_PORT (18091: /healthz, /readyz, /metrics),
# CONTROLLER_UI_PORT (probes + 300: the web page), CONTROLLER_ARGS (extra flags, e.g. --threads=4),
# CONTROLLER_REPLICAS (1: no leader election; 2+: knative leader election with buckets, see
# start_controller), REDIS_TOPOLOGY (single: one Redis on REDIS_PORT; cluster: a Redis Cluster
# of 3 primaries on REDIS_CLUSTER_PORT (REDIS_PORT+100) and the next two ports,
# config-cicdstatemgr's datasources.redis.cluster pointing at them; sentinel: a primary on
# REDIS_SENTINEL_PORT (REDIS_PORT+200), its replica on the next port and 3 sentinels on that
# port +10 to +12, config-cicdstatemgr's datasources.redis.sentinel pointing at the sentinels),
# plus the port variables of hack/lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_PORT="${REDIS_PORT:-16379}"
CONTROLLER_HTTP_PORT="${CONTROLLER_HTTP_PORT:-18090}"
CONTROLLER_PROBES_PORT="${CONTROLLER_PROBES_PORT:-18091}"
CONTROLLER_UI_PORT="${CONTROLLER_UI_PORT:-$((CONTROLLER_PROBES_PORT + 300))}"
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
  # the CLI static, as `make build` makes it (no dynamic loader at each start)
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$CLI_BIN" ./cmd/cicdstatemgr && go build -o "$CONTROLLER_BIN" ./cmd/controller)
}

# the topology of the stack that runs (start_redis records it) wins over the default, so that
# stop-redis, kill-redis and down act on what was started
REDIS_TOPOLOGY="${REDIS_TOPOLOGY:-$(cat "$CLUSTER_DIR/redis-topology" 2>/dev/null || echo single)}"
REDIS_CLUSTER_PORT="${REDIS_CLUSTER_PORT:-$((REDIS_PORT + 100))}"
REDIS_SENTINEL_PORT="${REDIS_SENTINEL_PORT:-$((REDIS_PORT + 200))}"
SENTINEL_MASTER=cicdstatemgr
SENTINELS=()
case "$REDIS_TOPOLOGY" in
single) REDIS_NODES=("$REDIS_PORT") ;;
cluster) REDIS_NODES=("$REDIS_CLUSTER_PORT" "$((REDIS_CLUSTER_PORT + 1))" "$((REDIS_CLUSTER_PORT + 2))") ;;
sentinel)
  REDIS_NODES=("$REDIS_SENTINEL_PORT" "$((REDIS_SENTINEL_PORT + 1))")
  SENTINELS=("$((REDIS_SENTINEL_PORT + 10))" "$((REDIS_SENTINEL_PORT + 11))" "$((REDIS_SENTINEL_PORT + 12))")
  ;;
*) die "REDIS_TOPOLOGY must be single, cluster or sentinel, not '$REDIS_TOPOLOGY'" ;;
esac
REDIS_CLI=(redis-cli --user cicdstatemgr --pass '123$aBcZ' --no-auth-warning)

# node_dir PORT: the directory of a Redis node (the single Redis keeps $REDIS_DIR).
node_dir() { if [[ "$REDIS_TOPOLOGY" == single ]]; then echo "$REDIS_DIR"; else echo "$REDIS_DIR/node-$1"; fi; }

start_redis() {
  local port extra=""
  mkdir -p "$CLUSTER_DIR" "$LOG_DIR"
  echo "$REDIS_TOPOLOGY" >"$CLUSTER_DIR/redis-topology"
  if [[ "$REDIS_TOPOLOGY" == sentinel ]]; then
    start_sentinel_set
    return 0
  fi
  [[ "$REDIS_TOPOLOGY" == cluster ]] && extra=$'cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 2000'
  for port in "${REDIS_NODES[@]}"; do
    REDIS_PERSIST=yes REDIS_EXTRA_CONF="$extra" bash "$ROOT/hack/redis.sh" start "$port" "$(node_dir "$port")"
  done
  [[ "$REDIS_TOPOLOGY" == cluster ]] && create_cluster
  return 0
}
stop_redis() {
  local port
  # the sentinels remember which node is the primary; keep it for the next start too
  [[ "$REDIS_TOPOLOGY" == sentinel ]] && record_primary
  # all nodes at once: one after the other, a Cluster would stay half up for seconds
  for port in "${REDIS_NODES[@]}"; do bash "$ROOT/hack/redis.sh" stop "$port" "$(node_dir "$port")" & done
  wait
}

# Sentinel: a primary and a replica (REDIS_NODES) and 3 sentinels (SENTINELS, quorum 2) that
# promote the replica when the primary does not answer for 2 s. Each data node may be
# either (a failover swaps them): a node (re)starts as the replica of the primary the
# sentinels name, or, when no sentinel runs, of the primary recorded at the last stop.
start_sentinel_set() {
  local primary port repl
  primary="$(current_primary)"
  repl=$'masteruser cicdstatemgr\nmasterauth "123$aBcZ"'
  # the primary first: a replica started alone could be promoted in its place
  for port in "$primary" "${REDIS_NODES[@]}"; do
    local extra="$repl"
    [[ "$port" != "$primary" ]] && extra+=$'\n'"replicaof 127.0.0.1 $primary"
    REDIS_PERSIST=yes REDIS_EXTRA_CONF="$extra" bash "$ROOT/hack/redis.sh" start "$port" "$(node_dir "$port")"
  done
  local conf
  conf="sentinel monitor $SENTINEL_MASTER 127.0.0.1 $primary 2
sentinel down-after-milliseconds $SENTINEL_MASTER 2000
sentinel failover-timeout $SENTINEL_MASTER 10000
sentinel auth-user $SENTINEL_MASTER cicdstatemgr
sentinel auth-pass $SENTINEL_MASTER 123\$aBcZ
sentinel sentinel-user cicdstatemgr
sentinel sentinel-pass 123\$aBcZ"
  for port in "${SENTINELS[@]}"; do
    REDIS_SENTINEL=yes REDIS_EXTRA_CONF="$conf" bash "$ROOT/hack/redis.sh" start "$port" "$REDIS_DIR/sentinel-$port"
  done
  wait_sentinels
}

# current_primary: the port of the primary as the first sentinel that answers names it, else
# the one recorded at the last stop, else the first data node.
current_primary() {
  local port addr
  for port in "${SENTINELS[@]}"; do
    if addr="$("${REDIS_CLI[@]}" -p "$port" sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null)" &&
      [[ "$(sed -n 2p <<<"$addr")" =~ ^[0-9]+$ ]]; then
      sed -n 2p <<<"$addr"
      return 0
    fi
  done
  cat "$REDIS_DIR/sentinel-primary" 2>/dev/null || echo "${REDIS_NODES[0]}"
}

record_primary() {
  local primary
  primary="$(current_primary)"
  mkdir -p "$REDIS_DIR"
  echo "$primary" >"$REDIS_DIR/sentinel-primary"
}

# wait_sentinels: until every sentinel knows the replica and the two other sentinels (so
# that a majority can authorize a failover).
wait_sentinels() {
  local port info start=$SECONDS
  for port in "${SENTINELS[@]}"; do
    until info="$("${REDIS_CLI[@]}" -p "$port" sentinel master "$SENTINEL_MASTER" 2>/dev/null)" &&
      [[ "$(grep -A1 -x num-slaves <<<"$info" | tail -1)" == 1 && "$(grep -A1 -x num-other-sentinels <<<"$info" | tail -1)" == 2 ]]; do
      ((SECONDS - start < 60)) || die "sentinel :$port does not know the replica and the other sentinels after 60s"
      sleep 0.5
    done
  done
  log "Redis Sentinel ok: primary :$(current_primary), sentinels ${SENTINELS[*]}"
}

stop_sentinels() {
  local port
  for port in "${SENTINELS[@]}"; do bash "$ROOT/hack/redis.sh" stop "$port" "$REDIS_DIR/sentinel-$port" & done
  wait
}

# create_cluster: redis-cli --cluster create over REDIS_NODES, once (the nodes keep their
# cluster in nodes.conf across a stop and start), then wait until every node says ok.
create_cluster() {
  local cli=("${REDIS_CLI[@]}") port addrs=() start=$SECONDS
  for port in "${REDIS_NODES[@]}"; do addrs+=("127.0.0.1:$port"); done
  if ! "${cli[@]}" -p "${REDIS_NODES[0]}" cluster info | grep -q '^cluster_known_nodes:3'; then
    log "creating the Redis Cluster ${addrs[*]}"
    "${cli[@]}" --cluster create "${addrs[@]}" --cluster-yes >"$LOG_DIR/redis-cluster-create.log" 2>&1 ||
      die "redis-cli --cluster create failed; see $LOG_DIR/redis-cluster-create.log"
  fi
  for port in "${REDIS_NODES[@]}"; do
    until "${cli[@]}" -p "$port" cluster info | grep -q '^cluster_state:ok'; do
      ((SECONDS - start < 30)) || die "the Redis Cluster is not ok on :$port after 30s"
      sleep 0.2
    done
  done
  log "Redis Cluster ok on ${addrs[*]}"
}

# redis_nodes: host:port of every data node, comma-separated (tests reach each node: SAVE, CONFIG).
redis_nodes() {
  local port addrs=()
  for port in "${REDIS_NODES[@]}"; do addrs+=("127.0.0.1:$port"); done
  local IFS=,
  echo "${addrs[*]}"
}

# redis_datasource: config.yaml's datasources.redis for the topology (a flow mapping).
redis_datasource() {
  local port addrs=() IFS=,
  case "$REDIS_TOPOLOGY" in
  cluster)
    for port in "${REDIS_NODES[@]}"; do addrs+=("\"127.0.0.1:$port\""); done
    echo "{cluster: {addresses: [${addrs[*]}]}}"
    ;;
  sentinel)
    for port in "${SENTINELS[@]}"; do addrs+=("\"127.0.0.1:$port\""); done
    echo "{sentinel: {masterName: $SENTINEL_MASTER, addresses: [${addrs[*]}]}}"
    ;;
  *) echo "{host: 127.0.0.1, port: $REDIS_PORT, isPrimary: true}" ;;
  esac
}

# redis_secret_extra: the Secret's lines under datasources.redis beyond the Redis login (the
# sentinels' own login).
redis_secret_extra() {
  [[ "$REDIS_TOPOLOGY" == sentinel ]] && echo '      sentinel: {username: cicdstatemgr, password: "123$aBcZ"}'
  return 0
}

# kill_redis: SIGKILL the Redis started by start_redis (and a snapshot child it may have
# forked), as a crash would; only the pid of redis.pid when it runs redis-server.
kill_redis() {
  local port
  for port in "${REDIS_NODES[@]}"; do kill_node "$(node_dir "$port")"; done
}

kill_node() {
  local dir="$1" pid exe child
  pid="$(cat "$dir/redis.pid" 2>/dev/null || true)"
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  # (Debian's redis-server is a link to redis-check-rdb)
  if [[ ! "$pid" =~ ^[0-9]+$ ]] || [[ "$(basename "$exe")" != redis-server* && "$(basename "$exe")" != redis-check* ]]; then
    log "no redis started by this stack runs (dir $dir); nothing to kill"
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
  rm -f "$dir/redis.pid"
}

# local_config prints config/'s ConfigMap and Secret pointed at the local Redis.
apply_config() {
  log "applying config/ (namespace, RBAC, configuration) for a controller out of cluster"
  for f in 100-namespace.yaml 200-serviceaccount.yaml 201-clusterrole.yaml 202-role.yaml 203-approvalgate-rbac.yaml 204-webui-rbac.yaml \
    300-approvalgate-crd.yaml 302-config-logging.yaml 303-config-leader-election.yaml 600-approvalgate-policy.yaml; do
    kc apply -f "$ROOT/config/$f" >/dev/null
  done
  kc -n "$NS" create configmap config-cicdstatemgr --from-file=config.yaml=/dev/stdin --dry-run=client -o yaml <<YAML | kc apply -f - >/dev/null
cicdstatemgr:
  datasources:
    redis: $(redis_datasource)
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
$(redis_secret_extra)
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

# Replicas: CONTROLLER_REPLICAS (default 1). One replica runs with --disable-ha (no leader
# election), as every test but the HA ones wants. With 2 or more (or CONTROLLER_HA=yes),
# each replica runs knative leader election with the buckets of config-leader-election:
# replica 1 is "cicdstatemgr-controller" on the ports above, replica i (2, 3, ...) is
# "cicdstatemgr-controller-<i>" (its own pid file and log) on those ports plus
# CONTROLLER_PORT_STEP*(i-1) (default -10: 18090 -> 18080, inside our 18080-18099 range).
CONTROLLER_REPLICAS="${CONTROLLER_REPLICAS:-1}"
CONTROLLER_PORT_STEP="${CONTROLLER_PORT_STEP:--10}"
CONTROLLER_HA="${CONTROLLER_HA:-}"
[[ "$CONTROLLER_REPLICAS" =~ ^[1-9]$ ]] || die "CONTROLLER_REPLICAS must be 1..9, not '$CONTROLLER_REPLICAS'"
if [[ -z "$CONTROLLER_HA" ]]; then
  if ((CONTROLLER_REPLICAS > 1)); then CONTROLLER_HA=yes; else CONTROLLER_HA=no; fi
fi

# replica_name I: the pid/log name of replica I.
replica_name() { if (($1 == 1)); then echo cicdstatemgr-controller; else echo "cicdstatemgr-controller-$1"; fi; }

# running_replicas: the replica numbers whose pid file names a live controller.
running_replicas() {
  local i
  for i in 1 2 3 4 5 6 7 8 9; do
    if is_running "$(replica_name "$i")"; then echo "$i"; fi
  done
}

start_controller() {
  local i mode
  # a replica left running in the other mode (with or without leader election) would
  # reconcile beside replicas that do not know it: refuse, stop-controller first
  for i in $(running_replicas); do
    mode="$(cat "$RUN_DIR/$(replica_name "$i").ha" 2>/dev/null || echo no)"
    if [[ "$mode" != "$CONTROLLER_HA" ]]; then
      die "controller replica $i runs with HA=$mode, this start wants HA=$CONTROLLER_HA: run stop-controller first"
    fi
  done
  [[ -x "$CONTROLLER_BIN" ]] || build_ours
  sa_kubeconfig
  # all replicas start together, then are waited for: started one after the other, the
  # first would acquire every bucket before the next one runs
  for ((i = 1; i <= CONTROLLER_REPLICAS; i++)); do
    start_replica "$i"
  done
  for ((i = 1; i <= CONTROLLER_REPLICAS; i++)); do
    wait_replica "$i"
  done
}

replica_ports() { # I: "http probes" of replica I
  echo "$((CONTROLLER_HTTP_PORT + CONTROLLER_PORT_STEP * ($1 - 1))) $((CONTROLLER_PROBES_PORT + CONTROLLER_PORT_STEP * ($1 - 1)))"
}

wait_replica() {
  local i="$1" name http probes
  name="$(replica_name "$i")"
  read -r http probes < <(replica_ports "$i")
  wait_for_http "http://127.0.0.1:$probes/readyz" 60 ||
    { tail -30 "$LOG_DIR/$name.log" >&2; die "$name did not become ready"; }
  log "$name is ready (HA=$CONTROLLER_HA; slack :$http, probes and metrics :$probes, log $LOG_DIR/$name.log)"
}

# start_replica I: start replica I unless it runs (wait_replica waits until it is ready).
start_replica() {
  local i="$1" name http probes port ha_flag=()
  name="$(replica_name "$i")"
  read -r http probes < <(replica_ports "$i")
  local ui=$((CONTROLLER_UI_PORT + CONTROLLER_PORT_STEP * (i - 1)))
  if is_running "$name"; then
    log "$name already runs (pid $(pid_of "$name"))"
    return 0
  fi
  for port in "$http" "$probes" "$ui"; do
    if port_listening "$port"; then
      die "port $port (replica $i) is in use by another process (another stack's controller?): stop it or set CONTROLLER_HTTP_PORT / CONTROLLER_PROBES_PORT / CONTROLLER_PORT_STEP"
    fi
  done
  [[ "$CONTROLLER_HA" == yes ]] || ha_flag=(--disable-ha)
  # Slack on --http-addr, health and metrics on --probe-addr (our listeners); knative's
  # own probe server (PROBES_PORT) and profiling server get ports of their own.
  local kprobes="${CONTROLLER_KNATIVE_PROBES_PORT:-$((CONTROLLER_PROBES_PORT + 200))}"
  local kprof="${CONTROLLER_PROFILING_PORT:-${PROFILING_PORT:-$((CONTROLLER_PROBES_PORT + 100))}}"
  kprobes=$((kprobes + CONTROLLER_PORT_STEP * (i - 1)))
  kprof=$((kprof + CONTROLLER_PORT_STEP * (i - 1)))
  START_BG_EXE="$CONTROLLER_BIN" start_bg "$name" env \
    SYSTEM_NAMESPACE="$NS" METRICS_PROTOCOL=none PROBES_PORT="$kprobes" PROFILING_PORT="$kprof" \
    "$CONTROLLER_BIN" --kubeconfig "$SA_KUBECONFIG" "${ha_flag[@]}" \
    --http-addr "127.0.0.1:$http" --probe-addr "127.0.0.1:$probes" --ui-addr "127.0.0.1:$ui" ${CONTROLLER_ARGS:-}
  echo "$CONTROLLER_HA" >"$RUN_DIR/$name.ha"
}

# stop_controller [--kill] [I]: stop (SIGTERM; --kill: SIGKILL) replica I, or every
# replica that runs.
stop_controller() {
  local kill=no i
  if [[ "${1:-}" == "--kill" ]]; then
    kill=yes
    shift
  fi
  local which=("$@")
  if ((${#which[@]} == 0)); then
    mapfile -t which < <(running_replicas)
    ((${#which[@]} > 0)) || which=(1)
  fi
  for i in "${which[@]}"; do
    [[ "$i" =~ ^[1-9]$ ]] || die "no controller replica '$i' (1..9)"
    stop_replica "$kill" "$(replica_name "$i")"
  done
}

stop_replica() {
  local kill="$1" name="$2" pid
  if [[ "$kill" == yes ]]; then
    pid="$(pid_of "$name")"
    if [[ -n "$pid" ]] && is_running "$name"; then
      log "killing $name (SIGKILL, pid $pid)"
      kill -KILL "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.bin" "$RUN_DIR/$name.ha"
  else
    stop_pid "$name" 10
    rm -f "$RUN_DIR/$name.ha"
  fi
}

write_env() {
  cat >"$ENV_FILE" <<ENV
KUBECONFIG=$KUBECONFIG_FILE
CICDSTATEMGR_STACK_DIR=$CLUSTER_DIR
CICDSTATEMGR_REDIS_ADDR=127.0.0.1:${REDIS_NODES[0]}
CICDSTATEMGR_REDIS_TOPOLOGY=$REDIS_TOPOLOGY
CICDSTATEMGR_REDIS_DATASOURCE=$(redis_datasource)
CICDSTATEMGR_REDIS_NODES=$(redis_nodes)
CICDSTATEMGR_REDIS_SENTINELS=$(IFS=,; echo "${SENTINELS[*]/#/127.0.0.1:}")
CICDSTATEMGR_REDIS_MASTER_NAME=$([[ "$REDIS_TOPOLOGY" == sentinel ]] && echo "$SENTINEL_MASTER")
CICDSTATEMGR_CONTROLLER_URL=http://127.0.0.1:$CONTROLLER_HTTP_PORT
CICDSTATEMGR_PROBES_URL=http://127.0.0.1:$CONTROLLER_PROBES_PORT
CICDSTATEMGR_UI_URL=http://127.0.0.1:$CONTROLLER_UI_PORT
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
  stop_sentinels || true
  rm -f "$CLUSTER_DIR/redis-topology"
  bash "$ROOT/hack/cluster/down.sh" "${@:2}"
  ;;
start-controller) start_controller ;;
stop-controller) stop_controller "${@:2}" ;;
start-redis) start_redis ;;
stop-redis) stop_redis ;;
kill-redis) kill_redis ;;
apply-config) apply_config ;;
env) cat "$ENV_FILE" ;;
*) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
