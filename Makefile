# Flashcart. The README names two commands: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python

# Local-only credentials and region for the emulator; real ones from your
# environment win. IMDS is off so the SDK never waits for an EC2 metadata service.
export AWS_ACCESS_KEY_ID ?= local
export AWS_SECRET_ACCESS_KEY ?= local
export AWS_REGION ?= us-east-1
export AWS_DEFAULT_REGION ?= $(AWS_REGION)
export AWS_EC2_METADATA_DISABLED := true
export SAM_CLI_TELEMETRY := 0
export FLASHCART_PYTHON ?= $(CURDIR)/$(PY)
EMULATOR_PORT ?= 4566
EMULATOR_DYNAMODB_PORT ?= 4567
API_PORT ?= 3000
export EMULATOR_PORT EMULATOR_DYNAMODB_PORT API_PORT

.PHONY: help venv run test lint policy contract token package bench-flash bench-cold-start bench-ingest bench-fetch clean

help:
	@echo "make run      start the whole stack locally (emulator, API on :$(API_PORT), seed data)"
	@echo "make test     every test: the emulator's patches against plain moto, then the workspace against a fresh emulator"
	@echo "make lint     rustfmt, clippy -D warnings, cfn-lint, sam validate --lint, the policy check (checkov)"
	@echo "make contract docs/openapi.yaml checked by Schemathesis against a fresh local stack, as a shopper and as an admin"
	@echo "make token USER=alice GROUPS=admin   a JWT for the local authorizer"
	@echo "make package  Lambda zips (arm64) with cargo-lambda"
	@echo "make bench-flash [S=500 K=8 R=5000 C=64]   flash-sale load through the local gateway"
	@echo "make bench-cold-start [N=10]   each function's first response from a fresh process, against Python + boto3"
	@echo "make bench-ingest [N=100000 BIG=1000000 C=4]   feed parse rate, drop-to-completed rate against the bare emulator, ingest peak RSS"
	@echo "make bench-fetch [SMALL=16 BIG=256]   a scheduled fetch's rate against a bare GET + multipart upload, fetcher peak RSS at two sizes (MiB)"

# The Python side (moto for the emulator; SAM CLI, which bundles cfn-lint).
# Reinstalled only when the requirements change.
$(VENV)/.installed: infra/local/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install -q --disable-pip-version-check -r infra/local/requirements.txt
	touch $@

$(VENV)/.deploy-installed: $(VENV)/.installed infra/local/requirements-deploy.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check -r infra/local/requirements-deploy.txt
	touch $@

venv: $(VENV)/.installed

# The policy checker in a venv of its own (infra/policy/requirements.txt says why).
POLICY_VENV := .venv-policy
$(POLICY_VENV)/.installed: infra/policy/requirements.txt
	python3 -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(POLICY_VENV)/bin/pip install -q --disable-pip-version-check -r infra/policy/requirements.txt
	touch $@

run: venv
	cargo build -p flashcart-local
	@# two moto processes, DynamoDB apart (ADR 0008); an endpoint you set wins,
	@# and with AWS_ENDPOINT_URL_DYNAMODB set no moto is started for DynamoDB
	@if [ -z "$${FLASHCART_EXTERNAL_ENDPOINTS:-}" ]; then \
		export AWS_ENDPOINT_URL="$${AWS_ENDPOINT_URL:-http://127.0.0.1:$(EMULATOR_PORT)}"; \
		if [ -z "$${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then \
			export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$(EMULATOR_DYNAMODB_PORT)"; \
		else export EMULATOR_DYNAMODB_PORT=0; fi; \
	fi; \
	FLASHCART_EMF=$${FLASHCART_EMF:-1} ./target/debug/flashcart-local run

test: venv
	$(PY) infra/local/test_emulator.py
	infra/local/with-emulator.sh cargo test --workspace --no-fail-fast

lint: venv policy
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/sam validate --lint --template template.yaml --region $(AWS_REGION)

# checkov over template.yaml; findings not accepted in infra/policy/accepted.yaml fail.
policy: $(POLICY_VENV)/.installed
	$(POLICY_VENV)/bin/python infra/policy/check.py template.yaml

# Schemathesis (pinned in requirements.txt) against a fresh stack on free ports:
# every check, a fixed seed, a bounded number of cases; exceptions per operation
# in infra/local/contract/ (ADR 0011).
contract: venv
	cargo build -p flashcart-local
	infra/local/with-emulator.sh infra/local/contract/run.sh

token:
	@cargo run -q -p flashcart-local -- token --user "$(USER)" --groups "$(GROUPS)"

# Every function the template declares (its BuildProperties.Binary), nothing else.
FUNCTIONS := $(shell sed -n 's/^ *Binary: *//p' template.yaml)

# cargo-lambda finds zig through `python3 -m ziglang`, so the venv comes first on PATH.
package: $(VENV)/.deploy-installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip \
		$(addprefix --bin ,$(FUNCTIONS))
	@for z in target/lambda/*/bootstrap.zip; do printf '%-45s %s bytes\n' "$$z" "$$(stat -c %s $$z)"; done

# Benchmarks are not part of `make test`: they print figures (docs/benchmarks.md).
bench-flash: venv
	cargo build --profile local-release -p flashcart-bench --bin bench-flash
	infra/local/with-emulator.sh ./target/local-release/bench-flash \
		$(if $(S),--stock $(S)) $(if $(K),--shards $(K)) $(if $(R),--requests $(R)) $(if $(C),--concurrency $(C))

# Feed ingest (issue 10): parse rates, end to end against the emulator's own
# bare write rate in the same run, and the ingest process's peak RSS at N and BIG.
bench-ingest: venv
	cargo build --profile local-release -p flashcart-bench --bin bench-ingest
	infra/local/with-emulator.sh ./target/local-release/bench-ingest \
		$(if $(N),--rows $(N)) $(if $(BIG),--big $(BIG)) $(if $(C),--concurrency $(C))

# Scheduled fetch (issue 12): a generated feed fetched by feed-fetcher in a
# process of its own, against a bare GET and multipart upload of the same bytes
# on the same emulator, and the fetcher's peak RSS at SMALL and BIG MiB.
bench-fetch: venv
	cargo build --profile local-release -p flashcart-bench --bin bench-fetch
	infra/local/with-emulator.sh ./target/local-release/bench-fetch \
		$(if $(SMALL),--small $(SMALL)) $(if $(BIG),--big $(BIG))

# Release binaries for this machine (the Lambda profile: fat LTO, one codegen
# unit), each started fresh N times under a Lambda Runtime API the benchmark
# serves, beside a Python 3 + boto3 handler doing the same first request.
bench-cold-start: venv
	cargo build --release -p storefront-api -p checkout -p flash-checkout -p admin-api
	cargo build --profile local-release -p flashcart-bench --bin bench-cold-start
	infra/local/with-emulator.sh ./target/local-release/bench-cold-start $(if $(N),--runs $(N))

clean:
	cargo clean
	rm -rf $(VENV) $(POLICY_VENV) .aws-sam
