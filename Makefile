# One entry point per job. Every target bootstraps first (fast when nothing is missing).
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help bootstrap demo test bench pkg worker lint fuzz

help: ## list targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap: ## install missing tools (apt, cargo, npm); idempotent
	@bash scripts/bootstrap.sh

demo: bootstrap ## build and run the local system; Ctrl-C stops it
	@bash scripts/demo.sh

test: bootstrap ## every test suite, with a pass/fail summary
	@bash scripts/test.sh

bench: bootstrap ## benchmarks; results go to docs/BENCHMARKS.md
	@bash scripts/bench.sh

pkg: bootstrap ## build the npm package into client-wasm/pkg/
	@bash scripts/build-pkg.sh

worker: bootstrap ## build the worker into edge-worker/build/
	@bash scripts/build-worker.sh

fuzz: bootstrap ## cargo-fuzz every network-fed decoder (installs nightly + cargo-fuzz once; FUZZ_SECONDS per target, default 120)
	@bash scripts/fuzz.sh

lint: ## rustfmt and clippy, native and wasm32
	cargo fmt --all --check
	cargo clippy --workspace --exclude client-wasm --exclude edge-worker --all-targets -- -D warnings
	cargo clippy -p client-wasm -p edge-worker --target wasm32-unknown-unknown --all-targets -- -D warnings
