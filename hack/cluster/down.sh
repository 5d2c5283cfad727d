#!/usr/bin/env bash
# Stop what hack/cluster/up.sh started (by pid file): Tekton controller, kube-apiserver, etcd.
#
#   hack/cluster/down.sh            # stop; state (etcd data, certs, logs) is kept
#   hack/cluster/down.sh --purge    # stop and delete $CLUSTER_DIR (not the built binaries)
#
# Env: CLUSTER_DIR (default $ROOT/.cache/cluster).
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

purge=0
for a in "$@"; do
  case "$a" in
    --purge) purge=1 ;;
    -h | --help) sed -n '2,7p' "$0"; exit 0 ;;
    *) die "unknown argument: $a (usage: down.sh [--purge])" ;;
  esac
done

log "stopping the local control plane in $CLUSTER_DIR"
stop_pid tekton-controller 15
stop_pid kube-apiserver 30
stop_pid etcd 15
rm -f "$RUN_DIR/tekton-controller.ports"

if ((purge)); then
  case "$CLUSTER_DIR" in
    "" | / | "$ROOT" | "$CACHE" | "$BIN_DIR") die "refusing to purge CLUSTER_DIR=$CLUSTER_DIR" ;;
  esac
  log "purging $CLUSTER_DIR"
  rm -rf "$CLUSTER_DIR"
fi
log "down"
