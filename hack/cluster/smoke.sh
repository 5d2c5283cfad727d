#!/usr/bin/env bash
# Prove the local control plane works end to end for custom tasks (run hack/cluster/up.sh first):
# a tekton.dev/v1 Pipeline of two custom tasks (example.dev/v1alpha1 Example), the second
# taking a result of the first as a param. We play the custom-task controller by patching the
# CustomRuns' status subresource, and expect the PipelineRun to succeed. Exit non-zero on failure.
#
# Env: CLUSTER_DIR, SMOKE_NAMESPACE (default cicd-smoke), SMOKE_TIMEOUT (seconds per wait, 60),
#      SMOKE_KEEP=1 (keep the objects afterwards).
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

NS="${SMOKE_NAMESPACE:-cicd-smoke}"
TIMEOUT="${SMOKE_TIMEOUT:-60}"
[[ -f "$KUBECONFIG_FILE" ]] || die "no kubeconfig at $KUBECONFIG_FILE: run hack/cluster/up.sh first"
is_running tekton-controller || die "the Tekton controller is not running: run hack/cluster/up.sh first"
k get --raw /readyz >/dev/null || die "kube-apiserver not ready"

suffix="$(date +%s)-$RANDOM"
PIPELINE="smoke-pipeline"
PR="smoke-$suffix"
RESULT_VALUE="hello-from-first-$suffix"

fail() {
  log "FAIL: $*"
  log "PipelineRun status:"
  k -n "$NS" get pipelinerun "$PR" -o jsonpath='{.status.conditions}' >&2 2>/dev/null || true
  echo >&2
  k -n "$NS" get customruns.v1beta1.tekton.dev -l "tekton.dev/pipelineRun=$PR" >&2 2>/dev/null || true
  log "last controller log lines:"
  tail -15 "$LOG_DIR/tekton-controller.log" >&2 || true
  exit 1
}

# wait_until DESC CMD... : retry CMD (quietly) until it succeeds or TIMEOUT passes.
wait_until() {
  local desc="$1" start=$SECONDS
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS - start < TIMEOUT)) || fail "timed out after ${TIMEOUT}s: $desc"
    sleep 0.2
  done
}

customrun_of() { # PIPELINE_TASK -> customrun name (empty if none yet)
  k -n "$NS" get customruns.v1beta1.tekton.dev \
    -l "tekton.dev/pipelineRun=$PR,tekton.dev/pipelineTask=$1" -o jsonpath='{.items[0].metadata.name}' 2>/dev/null
}
has_customrun() { [[ -n "$(customrun_of "$1")" ]]; }

# complete_customrun NAME [RESULT_NAME RESULT_VALUE]: Succeeded=True via the status subresource
complete_customrun() {
  local name="$1" now results='[]'
  now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  [[ $# -ge 3 ]] && results="$(jq -cn --arg n "$2" --arg v "$3" '[{name: $n, value: $v}]')"
  k -n "$NS" patch customruns.v1beta1.tekton.dev "$name" --subresource=status --type=merge -p "$(jq -cn \
    --arg now "$now" --argjson results "$results" '{status: {
      startTime: $now, completionTime: $now,
      conditions: [{type: "Succeeded", status: "True", reason: "Succeeded", message: "completed by smoke.sh", lastTransitionTime: $now}],
      results: $results}}')" >/dev/null || fail "patching status of customrun $name"
}

log "step 1/6: namespace $NS, Pipeline $PIPELINE, PipelineRun $PR"
k get ns "$NS" >/dev/null 2>&1 || k create ns "$NS" >/dev/null
k apply -f - >/dev/null <<EOF || fail "creating the Pipeline/PipelineRun"
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: $PIPELINE
  namespace: $NS
spec:
  params:
  - name: greeting
    type: string
    default: hi
  tasks:
  - name: first
    taskRef:
      apiVersion: example.dev/v1alpha1
      kind: Example
    params:
    - name: greeting
      value: \$(params.greeting)
  - name: second
    taskRef:
      apiVersion: example.dev/v1alpha1
      kind: Example
    params:
    - name: input
      value: \$(tasks.first.results.out)
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: $PR
  namespace: $NS
spec:
  pipelineRef:
    name: $PIPELINE
  params:
  - name: greeting
    value: smoke
EOF
t0=$SECONDS

log "step 2/6: waiting for the first CustomRun"
wait_until "CustomRun of task 'first' created" has_customrun first
CR1="$(customrun_of first)"
greeting="$(k -n "$NS" get customruns.v1beta1.tekton.dev "$CR1" -o jsonpath='{.spec.params[?(@.name=="greeting")].value}')"
kind="$(k -n "$NS" get customruns.v1beta1.tekton.dev "$CR1" -o jsonpath='{.spec.customRef.apiVersion}/{.spec.customRef.kind}')"
log "first CustomRun: $CR1 (customRef $kind, param greeting=$greeting)"
[[ "$kind" == example.dev/v1alpha1/Example ]] || fail "unexpected customRef $kind"
[[ "$greeting" == smoke ]] || fail "param greeting: got '$greeting', want 'smoke'"
has_customrun second && fail "second CustomRun created before the first completed"

log "step 3/6: completing $CR1 with result out=$RESULT_VALUE"
complete_customrun "$CR1" out "$RESULT_VALUE"

log "step 4/6: waiting for the second CustomRun"
wait_until "CustomRun of task 'second' created" has_customrun second
CR2="$(customrun_of second)"
input="$(k -n "$NS" get customruns.v1beta1.tekton.dev "$CR2" -o jsonpath='{.spec.params[?(@.name=="input")].value}')"
log "second CustomRun: $CR2 (param input=$input)"
[[ "$input" == "$RESULT_VALUE" ]] || fail "param input of the second CustomRun: got '$input', want '$RESULT_VALUE'"

log "step 5/6: completing $CR2"
complete_customrun "$CR2"

log "step 6/6: waiting for PipelineRun $PR to succeed"
pr_status() { k -n "$NS" get pipelinerun "$PR" -o jsonpath='{.status.conditions[?(@.type=="Succeeded")].status}' 2>/dev/null; }
start=$SECONDS
while :; do
  s="$(pr_status || true)"
  [[ "$s" == True ]] && break
  [[ "$s" == False ]] && fail "PipelineRun $PR failed"
  ((SECONDS - start < TIMEOUT)) || fail "timed out after ${TIMEOUT}s waiting for PipelineRun $PR to succeed (status '$s')"
  sleep 0.2
done
reason="$(k -n "$NS" get pipelinerun "$PR" -o jsonpath='{.status.conditions[?(@.type=="Succeeded")].reason}')"
log "PipelineRun $PR Succeeded (reason $reason) $((SECONDS - t0))s after creation"

if [[ "${SMOKE_KEEP:-0}" != 1 ]]; then
  # No garbage collector runs (no kube-controller-manager): delete the CustomRuns explicitly.
  k -n "$NS" delete customruns.v1beta1.tekton.dev -l "tekton.dev/pipelineRun=$PR" --wait=false >/dev/null || true
  k -n "$NS" delete pipelinerun "$PR" --wait=false >/dev/null || true
fi
log "SMOKE TEST PASSED"
