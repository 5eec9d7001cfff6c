# arroba: the two set-up commands are `make run` and `make test`.
# CI runs exactly `make test` (through .ci/run).

CARGO ?= cargo

.PHONY: test run bench fmt lint build clean emulator-start emulator-stop

EMULATOR_PORT ?= 4566
# Test credentials for the emulator; real AWS credentials are never needed by the tests.
TEST_ENV = AWS_ENDPOINT_URL=http://127.0.0.1:$(EMULATOR_PORT) AWS_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test

## Every check and test: formatting, clippy with warnings as errors, then all tests, with the
## DynamoDB/S3 emulator started before and stopped after (even when a test fails).
test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) build --all-targets
	localstack/emulator.sh start $(EMULATOR_PORT)
	status=0; $(TEST_ENV) $(CARGO) test --all-targets || status=$$?; \
	  [ $$status -eq 0 ] && { $(TEST_ENV) $(CARGO) test --doc || status=$$?; }; \
	  localstack/emulator.sh stop; exit $$status

## Run the PDS locally: http://localhost:2583, embedded store and blobs in .local/pds, an
## in-process PLC directory, dev mode (local handles under .test). Override any PDS_* variable.
run:
	PDS_DEV_MODE=$${PDS_DEV_MODE:-true} PDS_DATA_DIRECTORY=$${PDS_DATA_DIRECTORY:-./.local/pds} \
	  $(CARGO) run --release --bin arroba -- serve

## Criterion benchmarks; figures go in docs/benchmarks.md.
bench:
	$(CARGO) bench --bench repo
	$(CARGO) bench --bench xrpc
	localstack/emulator.sh start $(EMULATOR_PORT)
	status=0; $(TEST_ENV) $(CARGO) bench --bench firehose || status=$$?; localstack/emulator.sh stop; exit $$status

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --all-targets -- -D warnings

build:
	$(CARGO) build --release

clean:
	$(CARGO) clean

emulator-start:
	localstack/emulator.sh start $(EMULATOR_PORT)

emulator-stop:
	localstack/emulator.sh stop
