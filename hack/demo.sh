#!/usr/bin/env bash
# hack/demo.sh: `make demo`. Brings up a local Kubernetes API server, the real Tekton
# Pipelines controller, Redis and our controller (hack/stack.sh), runs the example
# pipelines of examples/ and prints their results. The cluster keeps running.
#
#   hack/demo.sh         up + run the examples
#   hack/demo.sh down    stop everything
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ "${1:-}" == down ]]; then
  exec bash "$ROOT/hack/stack.sh" down
fi

log "== cicdstatemgr demo: the first run builds etcd, kube-apiserver and the Tekton controller from the Go module proxy (10-30 minutes on 2 cores); later runs take seconds"
bash "$ROOT/hack/stack.sh" up
export KUBECONFIG="$KUBECONFIG_FILE"
kc() { "$(kubectl_bin)" "$@"; }
NS=cicdstatemgr-demo
kc create namespace "$NS" --dry-run=client -o yaml | kc apply -f - >/dev/null

log "== applying examples/ into namespace $NS"
for f in 01-app-config.yaml 02-build-pipeline.yaml 03-deploy-pipeline.yaml; do
  kc -n "$NS" apply -f "$ROOT/examples/$f"
done

# A fresh run id each time, so that the demo can run again on a live cluster.
suffix="$(date +%H%M%S)"
run_pipeline() {
  local pipeline="$1" name="$2"
  shift 2
  local params=""
  while (($#)); do params+="    - {name: $1, value: \"$2\"}"$'\n'; shift 2; done
  kc -n "$NS" create -f - >/dev/null <<YAML
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: $name}
spec:
  pipelineRef: {name: $pipeline}
  params:
$params
YAML
  log "started PipelineRun $name; waiting for it"
  local start=$SECONDS status=""
  while ((SECONDS - start < 120)); do
    status="$(kc -n "$NS" get pipelinerun "$name" -o jsonpath='{.status.conditions[?(@.type=="Succeeded")].status}' 2>/dev/null || true)"
    [[ "$status" == True || "$status" == False ]] && break
    sleep 0.3
  done
  echo
  echo "PipelineRun $name: $(kc -n "$NS" get pipelinerun "$name" -o jsonpath='{.status.conditions[?(@.type=="Succeeded")].reason}')"
  echo "  tasks (CustomRuns, no pods):"
  kc -n "$NS" get customruns -l "tekton.dev/pipelineRun=$name" \
    -o custom-columns='    TASK:.metadata.labels.tekton\.dev/pipelineTask,SUCCEEDED:.status.conditions[0].status,REASON:.status.conditions[0].reason,STARTED:.status.startTime,COMPLETED:.status.completionTime' | sed 's/^/  /'
  echo "  results:"
  kc -n "$NS" get pipelinerun "$name" -o go-template='{{range .status.results}}    {{.name}} = {{.value}}{{"\n"}}{{end}}'
  [[ "$status" == True ]] || die "PipelineRun $name did not succeed (kubectl -n $NS describe pipelinerun $name)"
}

ctx="myapp-1.2.0-dev-$suffix"
log "== example (1): the build pipeline creates cicd context $ctx from the app config (with a base) and uses it"
run_pipeline build "build-$suffix" context-id "$ctx" app-name myapp version 1.2.0
log "== example (2): the deploy pipeline loads the same context by id: state across pipelines"
run_pipeline deploy "deploy-$suffix" context-id "$ctx"

echo
log "== the stored context, read with the CLI (contexts belong to the namespace of the CustomRuns that made them)"
"$BIN_DIR/cicdstatemgr" --config <(printf 'cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1, port: %s, username: cicdstatemgr, password: "123$aBcZ"}\n' "${REDIS_PORT:-16379}") \
  --namespace "$NS" --id "$ctx" --get state

echo
log "== its history: who changed what, when (newest first; docs/history.md)"
"$BIN_DIR/cicdstatemgr" history --config <(printf 'cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1, port: %s, username: cicdstatemgr, password: "123$aBcZ"}\n' "${REDIS_PORT:-16379}") \
  --namespace "$NS" --id "$ctx" --limit 3

# A viewer of the namespace for the web page (docs/webui.md): a ServiceAccount bound to
# the cicdstatemgr-viewer ClusterRole, logged in with a token of its own.
kc -n "$NS" create serviceaccount demo-viewer --dry-run=client -o yaml | kc apply -f - >/dev/null
kc -n "$NS" create rolebinding demo-viewer --clusterrole=cicdstatemgr-viewer --serviceaccount="$NS:demo-viewer" \
  --dry-run=client -o yaml | kc apply -f - >/dev/null
ui_url="$(sed -n 's/^CICDSTATEMGR_UI_URL=//p' "$CLUSTER_DIR/stack.env")"

cat <<MSG

The demo cluster keeps running:
  export KUBECONFIG=$KUBECONFIG_FILE
  kubectl -n $NS get pipelineruns,customruns
  the web page: $ui_url/ (log in with the token of: kubectl -n $NS create token demo-viewer)
  logs: $LOG_DIR/cicdstatemgr-controller.log (and etcd, kube-apiserver, tekton-controller)
Stop it with: make demo-down
MSG
