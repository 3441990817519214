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
help: ## List every target with one line each (coloured only on a terminal, and never with NO_COLOR set)
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ]; then on='\033[36m'; off='\033[0m'; else on=''; off=''; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %s%-16s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

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
test: $(VENV_STAMP) system-packages ## Run the whole test suite (one area: make test PYTEST_ARGS=tests/databricks)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: system-packages
system-packages: ## Install the Debian packages the tests use as real parts (PostgreSQL, Chromium) where missing
	@scripts/install-system-packages.sh

.PHONY: lint
lint: $(VENV_STAMP) ## Run only the lint and security gates (ruff, shellcheck, hadolint, actionlint, ...)
	$(PY) -m pytest tests/lint $(PYTEST_ARGS)

.PHONY: fmt
fmt: $(VENV_STAMP) ## Format and auto-fix Python sources with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: demo
DB ?= sqlite
demo: $(VENV_STAMP) ## Run the whole pipeline offline on local stand-ins and print a summary (DB=postgres, DEMO_ARGS=--keep-running)
	$(PY) -m airbricks.local.demo --db $(DB) $(DEMO_ARGS)

# ---- One DAG on the local stand-ins (airbricks/local/run_dag.py, docs/INGESTION.md) --------------
.PHONY: run-dag
run-dag: $(VENV_STAMP) ## Run one ingestion DAG for one partition locally: make run-dag DAG=ingest_hackernews DATE=2026-11-19 [HOUR=05]
	$(PY) -m airbricks.local.run_dag "$(DAG)" "$(DATE)" $(if $(HOUR),--hour "$(HOUR)") $(RUN_DAG_ARGS)

# ---- Backfill a date range through ingestion + Databricks (airbricks/local/backfill.py, docs/PARTITIONS.md)
.PHONY: backfill
CONCURRENCY ?= 1
REPROCESS ?= completed
backfill: $(VENV_STAMP) ## Reprocess SOURCE's days FROM..TO (YYYY-MM-DD) via Airflow's backfill API, CONCURRENCY=N; local stand-ins unless AIRFLOW_API_URL is set
	$(PY) -m airbricks.local.backfill "$(SOURCE)" "$(FROM)" "$(TO)" --concurrency "$(CONCURRENCY)" --reprocess "$(REPROCESS)" $(BACKFILL_ARGS)

# ---- Reliability: fault-injection suite (tests/faults, docs/SECURITY.md) -------------------------
.PHONY: reliability
RELIABILITY_REPORT ?= .demo/reliability/faults.jsonl
reliability: $(VENV_STAMP) system-packages ## Inject every fault (API, S3, Databricks, Airflow processes) on PostgreSQL, print one line each + the summary; fails on any loss/leak
	@rm -f $(RELIABILITY_REPORT)
	@status=0; \
	AIRBRICKS_TEST_DB=postgres AIRBRICKS_RELIABILITY_REPORT=$(RELIABILITY_REPORT) $(PY) -m pytest tests/faults -m faults $(PYTEST_ARGS) || status=$$?; \
	$(PY) -m airbricks.reliability.report $(RELIABILITY_REPORT) || status=$$(( status ? status : 1 )); \
	exit $$status

# ---- The Airflow UI in a browser (tests/ui, docs/OBSERVABILITY.md#the-airflow-ui-in-a-browser) --------
.PHONY: ui-screenshots
ui-screenshots: $(VENV_STAMP) system-packages ## Check the demo's UI in headless Chromium and save its screenshots to docs/images/
	AIRBRICKS_UI_SCREENSHOTS_DIR=docs/images $(PY) -m pytest tests/ui -q $(PYTEST_ARGS)

# ---- Kubernetes on kind (scripts/kind.sh, docs/KUBERNETES.md) ------------------------------------
.PHONY: kind-up kind-down ui deploy status logs kind-smoke image
kind-up: ## Create the kind cluster (if absent), build+load the image, install Airflow; prints the UI login
	@scripts/kind.sh up

kind-down: ## Delete the kind cluster and everything in it
	@scripts/kind.sh down

ui: ## Port-forward the Airflow UI/API of the kind cluster to http://localhost:8080
	@scripts/kind.sh ui

deploy: ## Rebuild the image, load it into kind and helm-upgrade the release
	@scripts/kind.sh deploy

status: ## Show the Helm release, pods and jobs on the kind cluster
	@scripts/kind.sh status

logs: ## Tail the logs of the Airflow components on kind (COMPONENT=scheduler for one)
	@scripts/kind.sh logs

kind-smoke: ## Trigger the demo DAGs on kind through the REST API and wait for success
	@scripts/kind.sh smoke

image: ## Build the airbricks Airflow image (cicd/Dockerfile) with Docker
	@scripts/kind.sh image

# ---- Observability (docs/OBSERVABILITY.md) -------------------------------------------------------
.PHONY: dashboard
dashboard: $(VENV_STAMP) ## Regenerate the Grafana dashboard JSON from observability/dashboard.py
	$(PY) observability/dashboard.py

# ---- Databricks workspace emulator (docs/EMULATOR.md) --------------------------------------------
.PHONY: emulator
EMULATOR_PORT ?= 8765
EMULATOR_STATE_DIR ?= .demo/emulator
# s3:// job parameters are mirrored from/to this endpoint; empty: a local moto S3 with the bundle's buckets.
EMULATOR_S3_ENDPOINT ?=
EMULATOR_S3 = $(if $(EMULATOR_S3_ENDPOINT),--s3-endpoint-url $(EMULATOR_S3_ENDPOINT),--local-s3 --local-s3-bucket airbricks-raw --local-s3-bucket airbricks-lake)
emulator: $(VENV_STAMP) ## Serve the databricks/ bundle on a local Databricks emulator + local S3 (EMULATOR_S3_ENDPOINT=URL for yours)
	$(PY) -m airbricks.local.emulator_cli --port $(EMULATOR_PORT) --bundle databricks --state-dir $(EMULATOR_STATE_DIR) $(EMULATOR_S3) $(EMULATOR_ARGS)

# ---- Benchmarks (docs/PERFORMANCE.md) ------------------------------------------------------------
.PHONY: bench
bench: $(VENV_STAMP) ## Run the benchmarks offline (<15 min): bench/results.json + docs/PERFORMANCE.md; fails on a missed target
	$(PY) -m bench.run $(BENCH_ARGS)

# ---- CI/CD (.github/workflows/, docs/CICD.md) ----------------------------------------------------
# The chart gate CI runs, runnable locally with the same command.
CHART_ENVS ?= local prod
CHART_KUBE_VERSION ?= 1.33
.PHONY: chart-deps chart-validate
chart-deps: ## Fetch the official Airflow chart 1.22.0 into chart/charts/ as pinned by chart/Chart.lock (needs helm + network)
	@command -v helm >/dev/null || { echo "chart-deps: helm not found; install Helm >= 3.19 (https://helm.sh/docs/intro/install/)" >&2; exit 127; }
	helm repo add apache-airflow https://airflow.apache.org --force-update >/dev/null
	helm dependency build chart

chart-validate: $(VENV_STAMP) chart-deps ## Lint + template each values layering and validate it against Kubernetes schemas (needs helm)
	@rendered="$$(mktemp -d)"; trap 'rm -rf "$$rendered"' EXIT; \
	for env in $(CHART_ENVS); do \
	  layering="--values chart/values.yaml --values chart/values-$$env.yaml --set-string airflow.images.airflow.tag=chart-validate"; \
	  echo "chart-validate: values.yaml + values-$$env.yaml"; \
	  helm lint chart $$layering; \
	  helm template airbricks chart --namespace airbricks --kube-version "$(CHART_KUBE_VERSION).0" $$layering >"$$rendered/$$env.yaml"; \
	  $(VENV)/bin/kubernetes-validate --strict --quiet --kubernetes-version "$(CHART_KUBE_VERSION)" "$$rendered/$$env.yaml"; \
	done

.PHONY: clean
clean: ## Remove local state (.demo, caches); keeps .venv
	rm -rf .demo .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
