#!/usr/bin/env bash
# Start a local control plane: etcd + kube-apiserver + the real Tekton Pipelines controller
# (out of cluster). No Docker, no kubelet: pipelines of custom tasks need no pods.
# Idempotent: whatever already runs is left alone; a second run while up is a no-op.
#
#   hack/cluster/up.sh            # builds missing binaries first (a cold build takes minutes)
#   export KUBECONFIG=$ROOT/.cache/cluster/kubeconfig
#   hack/cluster/down.sh [--purge]
#
# Env: CLUSTER_DIR (default $ROOT/.cache/cluster), plus what hack/cluster/build.sh reads.
# Ports: etcd 23790 (client) / 23800 (peer), kube-apiserver 16443 on 127.0.0.1,
# Tekton controller probes/profiling: first free ports from 18100 (see run/tekton-controller.ports);
# knative also opens its own probe server on :8080 when that port is free.
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TEKTON_NAMESPACE=tekton-pipelines

log "cluster dir: $CLUSTER_DIR"
log "step 1/7: build binaries (only missing ones; a first build takes minutes)"
"$ROOT/hack/cluster/build.sh"
KUBECTL="$(kubectl_bin)" || die "no kubectl on PATH and none in $BIN_DIR (run BUILD_KUBECTL=1 hack/cluster/build.sh)"
log "using kubectl: $KUBECTL"

mkdir -p "$PKI_DIR" "$RUN_DIR" "$LOG_DIR" "$CLUSTER_DIR/etcd"
chmod 700 "$CLUSTER_DIR/etcd"

# ---------------------------------------------------------------------------------------------
log "step 2/7: certificates in $PKI_DIR"
# ---------------------------------------------------------------------------------------------
ossl() { openssl "$@" >/dev/null 2>&1 || { openssl "$@" >&2; die "openssl $1 failed"; }; }

# sign_cert NAME SUBJ EXT: key + CSR, signed by the CA with the extensions EXT.
sign_cert() {
  local name="$1" subj="$2" ext="$3"
  ossl genrsa -out "$PKI_DIR/$name.key" 2048
  ossl req -new -key "$PKI_DIR/$name.key" -subj "$subj" -out "$PKI_DIR/$name.csr"
  printf '%s\n' "$ext" >"$PKI_DIR/$name.ext"
  ossl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "$PKI_DIR/$name.ext" -out "$PKI_DIR/$name.crt"
  rm -f "$PKI_DIR/$name.csr" "$PKI_DIR/$name.ext"
}

if [[ -f "$PKI_DIR/ca.crt" && -f "$PKI_DIR/apiserver.crt" && -f "$PKI_DIR/admin.crt" && -f "$PKI_DIR/sa.key" ]]; then
  log "certificates present"
else
  log "generating CA, apiserver serving cert, admin client cert, service-account key pair"
  (
    umask 077
    ossl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI_DIR/ca.key" -out "$PKI_DIR/ca.crt" -days 3650 -sha256 \
      -subj "/CN=cicdstatemgr-local-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    sign_cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    sign_cert admin "/O=system:masters/CN=admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    ossl genrsa -out "$PKI_DIR/sa.key" 2048
    ossl rsa -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub"
  )
  rm -f "$KUBECONFIG_FILE" # new CA: rewrite the kubeconfig
fi

if [[ ! -f "$KUBECONFIG_FILE" ]]; then
  log "writing $KUBECONFIG_FILE"
  b64() { base64 -w0 <"$1"; }
  (
    umask 077
    cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(b64 "$PKI_DIR/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$PKI_DIR/admin.crt")
    client-key-data: $(b64 "$PKI_DIR/admin.key")
contexts:
- name: local
  context:
    cluster: local
    user: admin
current-context: local
EOF
  )
fi

curl_admin=(--cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" --key "$PKI_DIR/admin.key")

# ---------------------------------------------------------------------------------------------
log "step 3/7: etcd on 127.0.0.1:$ETCD_CLIENT_PORT (peer $ETCD_PEER_PORT)"
# ---------------------------------------------------------------------------------------------
if is_running etcd; then
  log "etcd already running (pid $(pid_of etcd))"
else
  for p in "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT"; do
    port_listening "$p" && die "port $p is taken by another process (not our etcd); see: ss -ltnp 'sport = :$p'"
  done
  start_bg etcd "$ETCD_BIN" \
    --name=local \
    --data-dir="$CLUSTER_DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync \
    --log-level=warn
fi
wait_for_http "http://127.0.0.1:$ETCD_CLIENT_PORT/health" 60 ||
  { tail -20 "$LOG_DIR/etcd.log" >&2; die "etcd is not healthy"; }
log "etcd healthy"

# ---------------------------------------------------------------------------------------------
log "step 4/7: kube-apiserver on https://127.0.0.1:$APISERVER_PORT"
# ---------------------------------------------------------------------------------------------
if is_running kube-apiserver; then
  log "kube-apiserver already running (pid $(pid_of kube-apiserver))"
else
  port_listening "$APISERVER_PORT" && die "port $APISERVER_PORT is taken by another process (not our kube-apiserver)"
  start_bg kube-apiserver "$KUBE_APISERVER_BIN" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" \
    --cert-dir="$PKI_DIR" \
    --tls-cert-file="$PKI_DIR/apiserver.crt" \
    --tls-private-key-file="$PKI_DIR/apiserver.key" \
    --client-ca-file="$PKI_DIR/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI_DIR/sa.pub" \
    --service-account-signing-key-file="$PKI_DIR/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --endpoint-reconciler-type=none \
    --disable-admission-plugins=ServiceAccount \
    --authorization-mode=RBAC \
    --allow-privileged=true
fi
wait_for_http "https://127.0.0.1:$APISERVER_PORT/readyz" 120 "${curl_admin[@]}" ||
  { tail -30 "$LOG_DIR/kube-apiserver.log" >&2; die "kube-apiserver is not ready"; }
log "kube-apiserver ready ($(curl -fsS "${curl_admin[@]}" "https://127.0.0.1:$APISERVER_PORT/version" | jq -r .gitVersion))"

# ---------------------------------------------------------------------------------------------
log "step 5/7: Tekton $TEKTON_VERSION manifests (namespace, CRDs, ConfigMaps)"
# ---------------------------------------------------------------------------------------------
if is_running tekton-controller; then
  log "Tekton controller already running: manifests already applied"
else
  tekton_dir="$(cd "$ROOT" && { GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' github.com/tektoncd/pipeline 2>/dev/null || true; })"
  if [[ -z "$tekton_dir" || ! -d "$tekton_dir/config" ]]; then
    tekton_dir="$(cd "$CACHE" && GOFLAGS='' GOWORK=off go mod download -json "github.com/tektoncd/pipeline@$TEKTON_VERSION" | jq -r .Dir)"
  fi
  [[ -d "$tekton_dir/config/300-crds" ]] || die "Tekton config dir not found (got '$tekton_dir')"
  log "Tekton config from $tekton_dir/config"

  k apply --server-side --force-conflicts --field-manager=cicdstatemgr-hack \
    -f "$tekton_dir/config/100-namespace/" >/dev/null
  # CRDs: cut the `conversion: strategy: Webhook` stanza (no webhook runs). Too large for a
  # client-side apply: server-side.
  crd_files=("$tekton_dir"/config/300-crds/*.yaml)
  for f in "${crd_files[@]}"; do
    awk '/^  conversion:/ {skip = 1; next}
         skip && (/^   / || /^[[:space:]]*$/) {next}
         {skip = 0; print}' "$f"
    echo "---"
  done | k apply --server-side --force-conflicts --field-manager=cicdstatemgr-hack -f - >/dev/null
  log "applied ${#crd_files[@]} CRDs: $(for f in "${crd_files[@]}"; do basename "$f" .yaml; done | xargs)"
  mapfile -t tekton_crds < <(k get crd -o name | grep '\.tekton\.dev$')
  k wait --for=condition=Established --timeout=60s "${tekton_crds[@]}" >/dev/null
  # ConfigMaps; metrics-protocol none keeps the metrics port (:9090) closed.
  cm_files=("$tekton_dir"/config/config-*.yaml)
  for f in "${cm_files[@]}"; do
    sed -E 's/^  metrics-protocol: .*/  metrics-protocol: none/' "$f"
    echo "---"
  done | k apply --server-side --force-conflicts --field-manager=cicdstatemgr-hack -f - >/dev/null
  log "applied ${#cm_files[@]} ConfigMaps: $(for f in "${cm_files[@]}"; do basename "$f" .yaml; done | xargs)"
  [[ "$(k -n "$TEKTON_NAMESPACE" get cm config-observability -o jsonpath='{.data.metrics-protocol}')" == none ]] ||
    die "config-observability: metrics-protocol is not none"
fi

# ---------------------------------------------------------------------------------------------
log "step 6/7: Tekton controller (out of cluster)"
# ---------------------------------------------------------------------------------------------
ports_file="$RUN_DIR/tekton-controller.ports"
if is_running tekton-controller; then
  log "Tekton controller already running (pid $(pid_of tekton-controller))"
else
  probes_port="$(free_port_from "$TEKTON_PORT_BASE" $((TEKTON_PORT_BASE + 99)))" || die "no free port from $TEKTON_PORT_BASE"
  profiling_port="$(free_port_from $((probes_port + 1)) $((TEKTON_PORT_BASE + 99)))" || die "no free port after $probes_port"
  printf 'PROBES_PORT=%s\nPROFILING_PORT=%s\n' "$probes_port" "$profiling_port" >"$ports_file"
  port_listening 8080 && log "note: :8080 is taken; knative's own probe server cannot bind it (harmless)"
  [[ -f "$LOG_DIR/tekton-controller.log" ]] && mv -f "$LOG_DIR/tekton-controller.log" "$LOG_DIR/tekton-controller.log.prev"
  START_BG_EXE="$TEKTON_CONTROLLER_BIN" start_bg tekton-controller env \
    SYSTEM_NAMESPACE="$TEKTON_NAMESPACE" \
    PROBES_PORT="$probes_port" \
    PROFILING_PORT="$profiling_port" \
    METRICS_DOMAIN=tekton.dev/pipeline \
    "$TEKTON_CONTROLLER_BIN" \
    -kubeconfig="$KUBECONFIG_FILE" \
    -disable-ha \
    -entrypoint-image=local.invalid/tekton/entrypoint:dummy \
    -nop-image=local.invalid/tekton/nop:dummy \
    -sidecarlogresults-image=local.invalid/tekton/sidecarlogresults:dummy \
    -workingdirinit-image=local.invalid/tekton/workingdirinit:dummy \
    -shell-image=local.invalid/tekton/shell:dummy \
    -shell-image-win=local.invalid/tekton/shell-win:dummy
  # Reconciling = the workers of the controllers have started (after informer sync).
  wait_for_log "$LOG_DIR/tekton-controller.log" 'Started workers' 120 "$(pid_of tekton-controller)" ||
    { tail -30 "$LOG_DIR/tekton-controller.log" >&2; die "Tekton controller did not start reconciling"; }
  sleep 1
  is_running tekton-controller || { tail -30 "$LOG_DIR/tekton-controller.log" >&2; die "Tekton controller exited"; }
fi
# shellcheck disable=SC1090
source "$ports_file" # PROBES_PORT, PROFILING_PORT
: "${PROBES_PORT:?}" "${PROFILING_PORT:?}"
wait_for_http "http://127.0.0.1:$PROBES_PORT/readiness" 30 || die "Tekton controller probes not answering on $PROBES_PORT"
log "Tekton controller reconciling (probes :$PROBES_PORT, profiling :$PROFILING_PORT, $(grep -c 'Started workers' "$LOG_DIR/tekton-controller.log") controllers started)"

# ---------------------------------------------------------------------------------------------
log "step 7/7: cluster up"
# ---------------------------------------------------------------------------------------------
env_prefix=""
[[ "$CLUSTER_DIR" != "$CACHE/cluster" ]] && env_prefix="CLUSTER_DIR=$CLUSTER_DIR "
cat <<EOF

Local control plane is up (etcd :$ETCD_CLIENT_PORT, kube-apiserver https://127.0.0.1:$APISERVER_PORT, Tekton $TEKTON_VERSION controller).
  export KUBECONFIG=$KUBECONFIG_FILE
  kubectl get customruns.tekton.dev,pipelineruns.tekton.dev -A
  logs:  $LOG_DIR/{etcd,kube-apiserver,tekton-controller}.log
  stop:  ${env_prefix}$ROOT/hack/cluster/down.sh            (add --purge to also delete $CLUSTER_DIR)
EOF
