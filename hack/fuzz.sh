#!/usr/bin/env bash
# hack/fuzz.sh DURATION: run every fuzz target of the project for DURATION each.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dur="${1:-8s}"
cd "$ROOT"
for pkg in $(go list ./pkg/... ./internal/... 2>/dev/null); do
  dir="$(go list -f '{{.Dir}}' "$pkg")"
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    log "fuzz $pkg $target for $dur"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$dur" "$pkg"
  done
done
