# The suite's entry points. `make demo` and `make test` are the two set-up commands: on a
# fresh machine they install what they need (tools/bootstrap.sh) and start the local
# stand-ins themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

MOTO_PORT ?= 5599
WATCH_PORT ?= 9599
FN ?= manifest-diff
EVENT ?= events/manifest-diff/schedule-list.json
export MOTO_PORT WATCH_PORT

VENV_BIN := $(CURDIR)/.venv/bin
export PATH := $(VENV_BIN):$(PATH)
LOCAL_AWS := AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1

.PHONY: help bootstrap services up down demo evidence gate test test-unit test-faults test-props deploy iac-check plan lint fmt package watch invoke bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap: ## Install moto, the AWS CLI and cargo-lambda into .venv
	@tools/bootstrap.sh

services: ## Start the machine's PostgreSQL and Redis if stopped; install Prometheus if missing
	@tools/services.sh

up: bootstrap ## Start moto and cargo lambda watch in the background (ports MOTO_PORT, WATCH_PORT)
	@tools/local-aws.sh start

down: ## Stop what `make up` started
	@tools/local-aws.sh stop

DEMOS ?= tools/demo.sh tools/demo-lifecycle.sh tools/demo-export.sh tools/demo-loadtest.sh tools/demo-finops.sh tools/demo-dr.sh tools/demo-chaos.sh tools/demo-scaler.sh tools/demo-uptime.sh tools/demo-alerts.sh tools/demo-bad-input.sh
demo: up services ## Run each function through the Lambda emulator against moto and print what it did
	@set -e; for d in $(DEMOS); do echo; echo "=== $$d"; bash $$d; done

evidence: bootstrap ## After make demo: the Grafana dashboards' panels as PNG from the demo's Prometheus and moto, the FinOps report and the DR drill log, index.md (.local/evidence/<date>/; docs/dashboards.md)
	@$(VENV_BIN)/pip install --quiet --disable-pip-version-check -r tools/requirements-evidence.txt
	@eval "$$(tools/local-aws.sh env)" && $(VENV_BIN)/python tools/evidence.py $(EVIDENCE_ARGS)

SCENARIO ?=
gate: ## The release gate of SCENARIO in ENV (local|dev|staging|prod): exit 0 open, 1 blocked, 2 no verdict, with a one-line reason
	@tools/gate.sh "$(SCENARIO)" "$(ENV)"

# One build for everything, tests and binaries alike, with one feature set: the end-to-end tests
# serve these binaries through the emulator (suite_tests::start_watch_on) and build nothing.
test: bootstrap services ## All tests: unit, integration against moto, end to end through cargo lambda watch and the AWS CLI
	cargo build --workspace --all-targets
	cargo test --workspace --all-targets --no-fail-fast -- --test-threads=4

test-unit: ## Unit tests only (no services)
	cargo test --workspace --lib --bins

lint: ## rustfmt, clippy (warnings are errors) and no unused dependency
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	tools/unused-deps.py

fmt:
	cargo fmt --all

package: bootstrap ## Build every function as a reproducible arm64 zip (target/lambda/<fn>/bootstrap.zip), print sizes, fail over the 10 MB budget
	@tools/package.sh

ENV ?=
deploy: package ## Package, then terraform apply infra/ for ENV=dev|staging|prod (docs/deploy.md)
	@test -n "$(ENV)" || { echo "usage: make deploy ENV=dev|staging|prod" >&2; exit 2; }
	terraform -chdir=infra init -input=false
	terraform -chdir=infra workspace select -or-create $(ENV)
	terraform -chdir=infra apply -var-file=environments/$(ENV).tfvars -var deployment=$$(git rev-parse --short HEAD)

iac-check: ## Parse infra/ with python-hcl2 and run checkov (docs/iac.md)
	@tools/iac-check.sh

plan: bootstrap ## terraform plan of every environment against a throwaway moto; plan JSON in .local/plan/ (docs/iac.md)
	@tools/tf-plan.sh

watch: bootstrap ## Run cargo lambda watch in the foreground, functions configured by tools/local.env
	@tools/local-aws.sh env >/dev/null
	cargo lambda watch --concurrency 4 -A 127.0.0.1 -P $(WATCH_PORT) --env-file .local/$(MOTO_PORT)-$(WATCH_PORT)/function.env

invoke: up ## Run FN once with EVENT through the Lambda emulator; prints the JSON response on stdout (on failure, the function's own log lines on stderr)
	@out=$$(mktemp); log=.local/$(MOTO_PORT)-$(WATCH_PORT)/$(FN).log; from=$$(stat -c %s $$log 2>/dev/null || echo 0); \
	if $(LOCAL_AWS) AWS_MAX_ATTEMPTS=1 aws lambda invoke --endpoint-url http://127.0.0.1:$(WATCH_PORT) \
	  --cli-read-timeout 0 --function-name $(FN) --payload fileb://$(EVENT) $$out >/dev/null 2>$$out.err; then \
	  cat $$out; echo; rm -f $$out $$out.err; \
	else cat $$out 2>/dev/null; cat $$out.err >&2; \
	  echo "--- $(FN)'s log for this invocation ($$log):" >&2; tail -c +$$((from + 1)) $$log | grep -v '^\s*$$' | tail -40 >&2; \
	  rm -f $$out $$out.err; exit 1; fi

OBJECTS ?= 10000000
EXPORT_MB ?= 1024
bench: bootstrap ## Benchmarks side by side with their peers (docs/benchmarks.md); OBJECTS=… per side, EXPORT_MB=…
	@$(VENV_BIN)/pip install --quiet --disable-pip-version-check -r tools/requirements-bench.txt
	@tools/bench-peers.sh
	cargo bench -p manifest-diff --bench inventory_join -- --objects $(OBJECTS)
	cargo bench -p export-compressor --bench compression -- --mb $(EXPORT_MB)
	cargo bench -p loadtest-shard --bench loadgen -- --secs 10 --rate 20000 --connections 50 --streams 500
	cargo bench -p cost-anomaly --bench detector_eval
	cargo bench -p suite-tests --bench cold_start

test-faults: ## Fault-injection tests: the fault proxy in front of moto (docs/reliability.md)
	cargo test -p fault-proxy -p fault-tests

test-props: ## Property tests of every parser of outside data (docs/reliability.md)
	PROPTEST_CASES=$${PROPTEST_CASES:-256} cargo test -p parser-props

clean: down
	cargo clean
	rm -rf .local
