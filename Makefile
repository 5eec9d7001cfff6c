# arroba: the two set-up commands are `make run` and `make test`.
# CI runs exactly `make test` (through .ci/run).

CARGO ?= cargo

.PHONY: test run bench fmt lint build clean

## Every check and test: formatting, clippy with warnings as errors, then all tests.
test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets
	$(CARGO) test --doc

## Run the PDS locally on the embedded store (arrives with the XRPC server, issue 5).
run:
	@echo "make run: not yet - the local PDS server arrives with the XRPC server issue."
	@echo "Meanwhile the repo tool works: cargo run -- repo --help"

## Criterion benchmarks; figures go in docs/benchmarks.md.
bench:
	$(CARGO) bench --bench repo

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --all-targets -- -D warnings

build:
	$(CARGO) build --release

clean:
	$(CARGO) clean
