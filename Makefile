# cicdstatemgr for Tekton. The two commands a newcomer needs:
#   make demo   bring up Kubernetes + Tekton + Redis + our controller locally and run the examples
#   make test   run every test (unit, CLI acceptance, controller, end to end)
# and, for the inner loop, `make check` (vet, unit and acceptance tests; no control plane).
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/.cache/bin

.PHONY: all deps build check test test-race test-e2e fuzz fuzz-short bench demo demo-down cluster-up cluster-down clean

all: build

## deps: install what the tests and the demo need (redis-server via apt-get; Go modules)
deps:
	@bash hack/deps.sh

## build: the CLI and the controller into .cache/bin. The CLI is static
## (CGO_ENABLED=0): no dynamic loader at each start (README, Benchmarks).
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/cicdstatemgr ./cmd/cicdstatemgr
	$(GO) build -o $(BIN)/cicdstatemgr-controller ./cmd/controller

# Package lists and flags of every test target live in hack/test.sh.

## check: vet, unit, controller and CLI acceptance tests against a real redis-server (no control plane)
check: deps
	@bash hack/test.sh check

## test: every test, as CI runs it (check, race, fuzz, end to end)
test: deps
	@bash hack/test.sh all

test-race: deps
	@bash hack/test.sh race

## test-e2e: the end-to-end suite against a local control plane (built on first use)
test-e2e: deps
	@bash hack/test.sh e2e

## fuzz-short: 1,000 inputs of each fuzz target (part of make test)
fuzz-short:
	@bash hack/test.sh fuzz

## fuzz: 200,000 inputs of each fuzz target
fuzz:
	@bash hack/fuzz.sh 200000x

## bench: benchmarks with ratios against baselines measured in the same run
bench: deps
	@bash hack/bench.sh

## demo: everything up, the example pipelines run, results printed; the cluster keeps running
demo: deps
	@bash hack/demo.sh

demo-down:
	@bash hack/demo.sh down

cluster-up:
	@bash hack/cluster/up.sh

cluster-down:
	@bash hack/cluster/down.sh

clean:
	rm -rf .cache/bin/cicdstatemgr .cache/bin/cicdstatemgr-controller
