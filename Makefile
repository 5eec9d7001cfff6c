# arroba: the two set-up commands are `make run` and `make test`.
# CI runs exactly `make test` (through .ci/run).

CARGO ?= cargo

.PHONY: test run run-aws smoke reference-pds oauth-client bootstrap bench fmt lint build clean emulator-start emulator-stop infra-test infra-clean lambda lambda-check deploy

EMULATOR_PORT ?= 4566
# Test credentials for the emulator; real AWS credentials are never needed by the tests.
TEST_ENV = AWS_ENDPOINT_URL=http://127.0.0.1:$(EMULATOR_PORT) AWS_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test

## Every check and test: formatting, the infrastructure checks, clippy with warnings as errors,
## then all tests (the OAuth client and browser they drive installed first, `oauth-client`), with
## the DynamoDB/S3 emulator started before and stopped after (even when a
## test fails). Benchmarks are type-checked by clippy and run by `make bench`, not here. On CI
## (CI set) the infrastructure checks' own tools are removed once they have run, to keep the
## checkout's disk use low (docs/benchmarks.md).
test:
	$(CARGO) fmt --all -- --check
	$(MAKE) infra-test
	$(if $(CI),$(MAKE) infra-clean,)
	$(MAKE) oauth-client
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) build --lib --bins --tests
	localstack/emulator.sh start $(EMULATOR_PORT)
	status=0; $(TEST_ENV) $(CARGO) test --lib --bins --tests || status=$$?; \
	  [ $$status -eq 0 ] && { $(TEST_ENV) $(CARGO) test --doc || status=$$?; }; \
	  localstack/emulator.sh stop; exit $$status

## Run the PDS locally: http://localhost:2583, embedded store and blobs in .local/pds, an
## in-process PLC directory, dev mode (local handles under .test). Override any PDS_* variable.
run:
	PDS_DEV_MODE=$${PDS_DEV_MODE:-true} PDS_DATA_DIRECTORY=$${PDS_DATA_DIRECTORY:-./.local/pds} \
	  $(CARGO) run --release --bin arroba -- serve

## Run the PDS locally on the AWS backends: DynamoDB tables and an S3 bucket (blobs) on the
## emulator (started if it is not running; dev mode creates the tables and the bucket), the
## firehose in-process, http://localhost:2583. The emulator keeps everything in memory:
## `make emulator-stop` forgets it all. Override any PDS_* variable or ARROBA_TABLE_PREFIX.
run-aws:
	localstack/emulator.sh start $(EMULATOR_PORT)
	$(TEST_ENV) PDS_DEV_MODE=$${PDS_DEV_MODE:-true} PDS_STORAGE=dynamodb \
	  ARROBA_TABLE_PREFIX=$${ARROBA_TABLE_PREFIX:-local-} \
	  PDS_BLOBSTORE_S3_BUCKET=$${PDS_BLOBSTORE_S3_BUCKET:-arroba-local-blobs} \
	  PDS_DATA_DIRECTORY=$${PDS_DATA_DIRECTORY:-./.local/pds-aws} \
	  $(CARGO) run --release --bin arroba -- serve

## Check a running PDS from outside (describeServer, a handle subdomain, the firehose WebSocket,
## getBlob, CORS preflights on the task's routes): make smoke URL=https://pds.example.org
## [BLOB=did/cid]. Exit code 1 if any check fails.
smoke:
	@[ -n "$(URL)" ] || { echo "set URL (make smoke URL=https://pds.example.org)" >&2; exit 1; }
	$(CARGO) run --release --bin arroba -- smoke $(URL) $(if $(BLOB),--blob $(BLOB),)

## What tests/it/oauth_client.rs drives: the official atproto OAuth client library and
## playwright-core (npm, pinned by tests/oauth-client/package-lock.json) into .local/oauth-client,
## and Debian's chromium (apt-get, when /usr/bin/chromium is absent).
oauth-client:
	[ -x /usr/bin/chromium ] || { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq chromium; }
	mkdir -p .local/oauth-client
	cp tests/oauth-client/package.json tests/oauth-client/package-lock.json .local/oauth-client/
	cd .local/oauth-client && npm ci --no-audit --no-fund --loglevel=error

## The tests against the reference TypeScript PDS: an account of 10,000 records and 50 blobs moved
## from it to ours and back, then on to an empty reference PDS, with `arroba account migrate`
## (docs/migration.md); every `arroba admin` verb against it. Installs the reference PDS into
## .local/reference-pds the first time (about 3 minutes).
reference-pds:
	$(CARGO) test --test it -- --ignored reference --nocapture

## Criterion benchmarks; figures go in docs/benchmarks.md.
bench:
	$(CARGO) bench --bench repo
	$(CARGO) bench --bench xrpc
	$(CARGO) bench --bench import
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

# A production-shaped synth (certificates, the edge, DNS) for cfn-lint and checkov to scan, and
# for the deploy rehearsal (tests/it/rehearsal/) to run, as `pds.rehearsal.test`.
INFRA_SYNTH_CONTEXT = -c hostname=pds.rehearsal.test \
	-c certificateArn=arn:aws:acm:us-east-1:123456789012:certificate/regional \
	-c edgeCertificateArn=arn:aws:acm:us-east-1:123456789012:certificate/edge \
	-c hostedZoneId=Z0123456789 -c zoneName=example.com
# Two virtualenvs: checkov pins its own fork of the hcl2 module, which shadows python-hcl2.
HCL_VENV = .local/hcl-venv
CHECKOV_VENV = .local/checkov-venv
## The deployment definitions without an AWS account: the CDK stack compiles, synthesises with
## cdk-nag clean and passes its assertions; cfn-lint on the template; the Terraform module parses
## and has the same shape; checkov on both (skips justified in infra/checkov.yaml).
## (tests/it/infra.rs, in `cargo test`, keeps infra/tables.json equal to the Rust definitions.)
infra-test:
	cd infra/cdk && npm ci --no-audit --no-fund --loglevel=error && npm test && npx cdk synth --quiet \
	  $(INFRA_SYNTH_CONTEXT)
	[ -x $(HCL_VENV)/bin/python ] || python3 -m venv $(HCL_VENV)
	$(HCL_VENV)/bin/pip install -q python-hcl2==8.1.4
	$(HCL_VENV)/bin/python infra/terraform/check.py
	[ -x $(CHECKOV_VENV)/bin/python ] || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q cfn-lint==1.58.0 checkov==3.3.30
	# W3005 (a DependsOn next to a Ref) and W3045 (the log bucket's ACL, which S3 server access
	# logging needs) are how CDK itself writes the template.
	$(CHECKOV_VENV)/bin/cfn-lint --ignore-checks W3005 W3045 -- infra/cdk/cdk.out/Arroba.template.json
	$(CHECKOV_VENV)/bin/checkov --config-file infra/checkov.yaml -d infra/terraform --framework terraform
	$(CHECKOV_VENV)/bin/checkov --config-file infra/checkov.yaml -f infra/cdk/cdk.out/Arroba.template.json \
	  --framework cloudformation

## Removes what infra-test installed (node_modules, the Python venvs); the synthesized template
## stays.
infra-clean:
	rm -rf infra/cdk/node_modules $(HCL_VENV) $(CHECKOV_VENV)

# The Lambda is built by cargo-lambda, which cross-compiles for either architecture from any host
# (it links with zig); both come from PyPI into .local/cargo-lambda on first use. Our own release
# profile (Cargo.toml) applies, not cargo-lambda's defaults (which include panic = "abort").
LAMBDA_ARCH ?= arm64
CARGO_LAMBDA_VENV = .local/cargo-lambda
CARGO_LAMBDA_PINS = cargo-lambda==1.9.2 ziglang==0.17.1
LAMBDA_CPU = $(if $(filter arm64,$(LAMBDA_ARCH)),aarch64,x86_64)
LAMBDA_TRIPLE = $(LAMBDA_CPU)-unknown-linux-gnu

## The Lambda package for LAMBDA_ARCH (arm64, the default, or x86_64): target/lambda/bootstrap
## (the CDK asset) and target/arroba-lambda.zip (for Terraform).
lambda:
	@case "$(LAMBDA_ARCH)" in arm64|x86_64) ;; *) echo "LAMBDA_ARCH must be arm64 or x86_64" >&2; exit 1;; esac
	[ -x $(CARGO_LAMBDA_VENV)/bin/cargo-lambda ] || { python3 -m venv $(CARGO_LAMBDA_VENV) && \
	  $(CARGO_LAMBDA_VENV)/bin/pip install -q --disable-pip-version-check $(CARGO_LAMBDA_PINS); }
	rustup target list --installed | grep -qx $(LAMBDA_TRIPLE) || rustup target add $(LAMBDA_TRIPLE)
	PATH="$(CURDIR)/$(CARGO_LAMBDA_VENV)/bin:$$PATH" $(CARGO) lambda build --release --bin lambda \
	  --$(if $(filter arm64,$(LAMBDA_ARCH)),arm64,x86-64) --disable-optimizations \
	  --lambda-dir target/lambda --flatten lambda
	cd target/lambda && python3 -c 'import zipfile; z = zipfile.ZipFile("../arroba-lambda.zip", "w", zipfile.ZIP_DEFLATED); i = zipfile.ZipInfo("bootstrap"); i.external_attr = 0o100755 << 16; i.compress_type = zipfile.ZIP_DEFLATED; z.writestr(i, open("bootstrap", "rb").read()); z.close()'
	@echo "target/lambda/bootstrap, target/arroba-lambda.zip ($(LAMBDA_ARCH))"

# Runs tests/it/lambda_runtime.rs against the packaged bootstrap rather than the debug build; a
# package for the other architecture runs under qemu-user (Debian's qemu-user, with
# libc6-arm64-cross or libc6-amd64-cross for its C library).
LAMBDA_RUNNER ?= $(if $(filter-out $(shell uname -m),$(LAMBDA_CPU)),qemu-$(LAMBDA_CPU) -L /usr/$(LAMBDA_CPU)-linux-gnu,)
## The packaged Lambda against the stand-in Runtime API and the emulator (not part of `make test`:
## it needs the cross build and, for arm64 on x86_64, qemu-user).
lambda-check: lambda
	localstack/emulator.sh start $(EMULATOR_PORT)
	status=0; $(TEST_ENV) ARROBA_LAMBDA_BOOTSTRAP=$(CURDIR)/target/lambda/bootstrap \
	  ARROBA_LAMBDA_RUNNER="$(LAMBDA_RUNNER)" $(CARGO) test --test it lambda_runtime:: || status=$$?; \
	  localstack/emulator.sh stop; exit $$status

## Prepare an AWS account and region for CDK, once (credentials from the environment).
bootstrap:
	cd infra/cdk && npm ci --no-audit --no-fund --loglevel=error && npx tsc && npx cdk bootstrap

## Deploy with CDK to the account in the environment: PDS_HOSTNAME=pds.example.org make deploy
## (CERTIFICATE_ARN, EDGE_CERTIFICATE_ARN, HOSTED_ZONE_ID + ZONE_NAME, CREATE_CERTIFICATE=true,
## PDS_CRAWLERS, PDS_INVITE_REQUIRED, ALARM_EMAIL and WAF_RATE_LIMIT optional; LAMBDA_BOOTSTRAP=path
## deploys a prebuilt bootstrap for LAMBDA_ARCH instead of building one; docs/deploy.md walks
## through the first deploy). Unset variables leave the stack's defaults.
LAMBDA_BOOTSTRAP ?=
# A prebuilt bootstrap is copied alone into its own asset folder (CDK zips the whole folder).
LAMBDA_ASSET = $(if $(LAMBDA_BOOTSTRAP),$(CURDIR)/target/lambda-prebuilt,$(CURDIR)/target/lambda)
# `-c name=value` for each variable that is set.
cdk_context = $(if $(2),-c $(1)=$(2),)
deploy: $(if $(LAMBDA_BOOTSTRAP),,lambda)
	@[ -n "$(PDS_HOSTNAME)" ] || { echo "set PDS_HOSTNAME" >&2; exit 1; }
	$(if $(LAMBDA_BOOTSTRAP),rm -rf $(LAMBDA_ASSET) && mkdir -p $(LAMBDA_ASSET) && \
	  install -m 755 $(LAMBDA_BOOTSTRAP) $(LAMBDA_ASSET)/bootstrap,@true)
	cd infra/cdk && npm ci --no-audit --no-fund --loglevel=error && npx tsc && npx cdk deploy \
	  -c hostname=$(PDS_HOSTNAME) -c architecture=$(LAMBDA_ARCH) -c lambdaAsset=$(LAMBDA_ASSET) \
	  $(call cdk_context,crawlers,$(PDS_CRAWLERS)) \
	  $(call cdk_context,appViewUrl,$(PDS_BSKY_APP_VIEW_URL)) \
	  $(call cdk_context,appViewDid,$(PDS_BSKY_APP_VIEW_DID)) \
	  $(call cdk_context,reportServiceUrl,$(PDS_REPORT_SERVICE_URL)) \
	  $(call cdk_context,reportServiceDid,$(PDS_REPORT_SERVICE_DID)) \
	  $(call cdk_context,emailFrom,$(PDS_EMAIL_FROM_ADDRESS)) \
	  $(call cdk_context,inviteRequired,$(PDS_INVITE_REQUIRED)) \
	  $(call cdk_context,certificateArn,$(CERTIFICATE_ARN)) \
	  $(call cdk_context,edgeCertificateArn,$(EDGE_CERTIFICATE_ARN)) \
	  $(call cdk_context,hostedZoneId,$(HOSTED_ZONE_ID)) $(call cdk_context,zoneName,$(ZONE_NAME)) \
	  $(call cdk_context,createCertificate,$(CREATE_CERTIFICATE)) \
	  $(call cdk_context,alarmEmail,$(ALARM_EMAIL)) \
	  $(call cdk_context,wafRateLimit,$(WAF_RATE_LIMIT))
