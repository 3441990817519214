# airbricks — every target is listed by `make help` (the text after `##`).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV ?= .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.airbricks-installed
PYTEST_ARGS ?=

.PHONY: help
help: ## List every target with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# ---- Python environment --------------------------------------------------------------------------
$(VENV_STAMP): requirements.lock pyproject.toml scripts/bootstrap-venv.sh
	@VENV_DIR=$(VENV) scripts/bootstrap-venv.sh
	@touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## Create or refresh .venv from requirements.lock (idempotent)

.PHONY: lock
lock: ## Re-resolve requirements.lock from requirements.txt + requirements-dev.txt (needs network)
	@test -x $(VENV)/bin/uv || { python3 -m venv $(VENV) && $(PY) -m pip install -q uv==0.13.8; }
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --no-header --annotation-style line \
		requirements.txt requirements-dev.txt -o requirements.lock

# ---- Everyday targets ----------------------------------------------------------------------------
.PHONY: test
test: $(VENV_STAMP) ## Run the whole test suite (unit, integration over real HTTP, Airflow, lint gates)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: lint
lint: $(VENV_STAMP) ## Run only the lint and security gates (ruff, shellcheck, hadolint, actionlint, ...)
	$(PY) -m pytest tests/lint $(PYTEST_ARGS)

.PHONY: fmt
fmt: $(VENV_STAMP) ## Format and auto-fix Python sources with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: demo
demo: $(VENV_STAMP) ## Run the whole pipeline offline on local stand-ins and print a summary
	$(PY) -m airbricks.local.demo

# ---- Targets added by later components go below, one block each ---------------------------------

.PHONY: clean
clean: ## Remove local state (.demo, caches); keeps .venv
	rm -rf .demo .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
