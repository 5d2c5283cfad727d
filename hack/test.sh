#!/usr/bin/env bash
# hack/test.sh PHASE...: the project's tests. The Makefile's test targets call this script,
# so the package lists and flags live here, once.
#
#   check  vet, then the unit, controller and CLI acceptance tests (a real redis-server,
#          no control plane): the inner loop, a couple of minutes (`make check`)
#   race   the race detector on the core packages
#   fuzz   1,000 inputs of every fuzz target
#   e2e    the end-to-end suite against a local Kubernetes + Tekton control plane
#          (binaries built once and cached in .cache/bin; a first build takes 10-30 min)
#   all    every phase, as CI runs it (`make test`): the control plane builds in the
#          background while check, race and fuzz run
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
export GOFLAGS="${GOFLAGS:-} -mod=mod"

# The packages of each phase: test/e2e only in e2e (bench/ has tests of its report here;
# its benchmarks run with `make bench`).
unit_pkgs() { go list ./... | grep -v -e /test/e2e; }
RACE_PKGS=(./pkg/document/... ./pkg/tmpl/... ./pkg/store/... ./pkg/engine/... ./pkg/handlers/... ./pkg/gate/... ./pkg/cloudevents/...)
E2E_PKGS=(./test/e2e/...)
GOTEST=(go test -count=1)

build_pid=""
build_log="$CACHE/logs/cluster-build.log"
start_control_plane_build() {
  log "== build the control-plane binaries in the background (cached after the first run; log: $build_log)"
  mkdir -p "$(dirname "$build_log")"
  bash hack/cluster/build.sh >"$build_log" 2>&1 &
  build_pid=$!
}
wait_control_plane_build() {
  if [[ -z "$build_pid" ]]; then
    bash hack/cluster/build.sh
    return
  fi
  log "== waiting for the control-plane build (log: $build_log)"
  if ! wait "$build_pid"; then
    tail -50 "$build_log" >&2
    die "building the control plane failed"
  fi
}

phase_check() {
  log "== vet"
  go vet ./...
  log "== unit, controller and CLI acceptance tests"
  # shellcheck disable=SC2046
  "${GOTEST[@]}" $(unit_pkgs)
}
phase_race() {
  log "== race detector on the core packages"
  "${GOTEST[@]}" -race "${RACE_PKGS[@]}"
}
phase_fuzz() {
  log "== short fuzzing"
  bash hack/fuzz.sh 1000x
}
phase_e2e() {
  wait_control_plane_build
  log "== end-to-end tests"
  "${GOTEST[@]}" -p 1 -timeout 40m "${E2E_PKGS[@]}"
}

(($# > 0)) || set -- all
for phase in "$@"; do
  case "$phase" in
    check | race | fuzz | e2e) "phase_$phase" ;;
    all)
      start_control_plane_build
      phase_check
      phase_race
      phase_fuzz
      phase_e2e
      ;;
    *) die "unknown phase $phase (check, race, fuzz, e2e, all)" ;;
  esac
done
