# Two commands do everything: `make run` and `make test`. Both create .venv when it is
# missing or older than pyproject.toml, install the project into it, then do their job.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PRESET ?= demo
DATA_ROOT ?= data

# No internet here, and nightly jobs must not phone home.
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := False
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120

.PHONY: run test lint format demo-store clean-data venv bench-deps server serve monitor advance chromium docs

PREFECT_PORT ?= 4200
DAYS ?= 1
SCENARIO ?= none

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if ! $(BIN)/python -c "import sys" 2>/dev/null; then rm -rf $(VENV); $(PYTHON) -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

bench-deps: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'

demo-store: $(STAMP)
	$(BIN)/python -m demo_store --preset $(PRESET) --db $(DATA_ROOT)/demo/store.db --if-absent

run: demo-store
	RECS_DATA_ROOT=$(DATA_ROOT) $(BIN)/python -m flows.nightly

# A Prefect server on this machine (UI at http://127.0.0.1:$(PREFECT_PORT)); keeps running.
server: $(STAMP)
	$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# Serve the deployments (nightly at 02:00, monitor at 06:00, rollback by hand) to that server.
serve: demo-store
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api RECS_DATA_ROOT=$(DATA_ROOT) \
		$(BIN)/python -m deployments.serve

# Advance the demo store by DAYS days (SCENARIO: none, launch, season, new_users), then monitor.
advance: demo-store
	$(BIN)/python -m demo_store.live --db $(DATA_ROOT)/demo/store.db --days $(DAYS) --scenario $(SCENARIO)

monitor: $(STAMP)
	RECS_DATA_ROOT=$(DATA_ROOT) $(BIN)/python -m flows.monitor

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The suite runs on TEST_WORKERS processes (pytest-xdist; each has its own Prefect test
# server and temporary data roots): most tests wait on Prefect and subprocesses, not CPU.
# The longest tests start first (tests/conftest.py) and an idle worker steals queued tests
# from a busy one (worksteal), so neither ends alone with a long tail.
TEST_WORKERS ?= 2

test: lint chromium
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

# The page tests open reports and Data Docs in headless Chromium (Debian's package): install
# it when missing (CI runs as root on Debian; the package lists are fetched only if needed).
# Without the recommended packages (systemd, samba, cups, perl: about 120 packages, most of
# CI's set-up time) the browser has what it needs: its dependencies and a font.
CHROMIUM_PACKAGES := chromium fonts-liberation
chromium:
	@if ! command -v chromium >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y --no-install-recommends $(CHROMIUM_PACKAGES) || \
			{ apt-get update && apt-get install -y --no-install-recommends $(CHROMIUM_PACKAGES); }; \
	fi

# Re-render everything generated from one description: the docs' tables from
# docs/results/*.json (each benchmark writes its file) and docs/configuration.md from the
# pydantic models (docs/render.py), the JSON Schemas of the files other programs read
# (docs/schemas/, tasks/contracts.py) and deployments/prefect.yaml (deployments/serve.py).
docs: $(STAMP)
	$(BIN)/python docs/render.py
	$(BIN)/python -m tasks.contracts
	$(BIN)/python -m deployments.serve --write-prefect-yaml

clean-data:
	rm -rf $(DATA_ROOT)/runs $(DATA_ROOT)/published
