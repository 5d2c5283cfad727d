#!/usr/bin/env bash
# hack/test.sh: what `make test` runs. Unit and acceptance tests (real redis-server),
# the race detector on the core packages, short fuzzing, then the end-to-end suite
# against a local Kubernetes + Tekton control plane (binaries built once and cached
# in .cache/bin; the first build takes 10-20 minutes on 2 cores).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
export GOFLAGS="${GOFLAGS:-} -mod=mod"

log "== build the control-plane binaries in the background (cached after the first run)"
build_log="$CACHE/logs/cluster-build.log"
mkdir -p "$(dirname "$build_log")"
bash hack/cluster/build.sh >"$build_log" 2>&1 &
build_pid=$!

log "== vet"
go vet ./...

log "== unit, controller and CLI acceptance tests (benchmarks run with make bench)"
go test -count=1 -p 1 $(go list ./... | grep -v -e /test/e2e -e /bench)

log "== race detector on the core packages"
go test -count=1 -race ./pkg/document/... ./pkg/tmpl/... ./pkg/store/... ./pkg/engine/... ./pkg/handlers/...

log "== short fuzzing"
bash hack/fuzz.sh 1000x

log "== waiting for the control-plane build (log: $build_log)"
if ! wait "$build_pid"; then
  tail -50 "$build_log" >&2
  die "building the control plane failed"
fi

log "== end-to-end tests"
go test -count=1 -p 1 -timeout 40m ./test/e2e/...
