# spendstream: every target sets up what it needs on a fresh machine (scripts/setup).
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.DEFAULT_GOAL := help
.PHONY: help setup setup-litellm run test check unit faults stack-up stack-down stack-status bench jsonschema clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-13s %s\n", $$1, $$2}'

setup: ## install system packages, .venv and the Kafka jars (idempotent)
	@./scripts/setup

run: setup ## the main job: every feature on the local stack fed by a sample workload; leaves the console running
	@$(BIN)/spendstream demo

test: setup check ## lint, type-check and run every test against the local stack
	@./scripts/setup-focus-validator
	@$(PY) -m pytest

check: setup ## ruff, mypy, deptry (every import declared) and vulture (no dead code); import-linter runs in the tests
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy
	@$(BIN)/deptry .
	@$(BIN)/vulture

unit: setup ## the tests that need no services
	@$(PY) -m pytest -m "not stack"

faults: setup ## the fault-injection suite alone (kills and restarts the local services)
	@$(PY) -m pytest -m faults

setup-litellm: setup ## the separate .venv-litellm for the LiteLLM proxy test (the tests run it too)
	@./scripts/setup-litellm

stack-up: setup ## start Kafka, Redis and the embedded ClickHouse
	@$(BIN)/spendstream stack up

stack-down: ## stop what stack-up started
	@$(BIN)/spendstream stack down

stack-status: ## show what runs where
	@$(BIN)/spendstream stack status

bench: setup ## run the benchmarks; each writes bench/results/<name>.json
	@for b in bench/[a-z]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

jsonschema: setup ## regenerate schemas/jsonschema from the Python model
	@$(PY) scripts/gen_jsonschema.py

clean: ## remove the virtualenv and caches (not the stack's data)
	rm -rf $(VENV) .venv-litellm .venv-focus .mypy_cache .ruff_cache .pytest_cache
