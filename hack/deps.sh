#!/usr/bin/env bash
# hack/deps.sh: install what `make test` and `make demo` need on a fresh Debian machine
# (Go itself is expected; everything else comes from Debian's packages or is built from
# the Go module proxy by hack/cluster/build.sh). Debian's chromium drives the web page in
# test/e2e/webui_test.go (headless, through chromedp).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$ROOT/hack/redis.sh" install
missing=()
for tool in openssl:openssl curl:curl ss:iproute2 setsid:util-linux chromium:chromium; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]} with apt-get"
  SUDO=""
  [[ "$(id -u)" == 0 ]] || SUDO=sudo
  [[ -n "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]] || $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
(cd "$ROOT" && go mod download)
