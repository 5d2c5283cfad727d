#!/usr/bin/env bash
# hack/fuzz.sh BUDGET: run every fuzz target of the project with -fuzztime=BUDGET each.
# Use an execution count (1000x), not a duration: with a duration Go 1.26's fuzz
# coordinator can fail a run with a bare "context deadline exceeded" when the time
# runs out under CPU load (go.dev/issue/75804, fixed in Go 1.27), with no crasher.
# Every target holds each input to a time, allocation and stack budget
# (internal/fuzzbudget), so an input that hangs or amplifies fails like a panic.
# FUZZ_PARALLEL=N runs N fuzzing workers (default: one per CPU).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dur="${1:-1000x}"
par=()
if [[ -n "${FUZZ_PARALLEL:-}" ]]; then par=(-parallel="$FUZZ_PARALLEL"); fi
cd "$ROOT"
for pkg in $(go list ./pkg/... ./internal/... 2>/dev/null); do
  dir="$(go list -f '{{.Dir}}' "$pkg")"
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    log "fuzz $pkg $target for $dur"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$dur" "${par[@]}" "$pkg"
  done
done
