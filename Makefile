# metgan: the commands the README gives. Every target installs into .venv first when it is
# missing or when pyproject.toml / requirements.lock changed (a stamp file records the install).

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV)/bin)
STAMP := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)

.PHONY: install test test-fast test-embedded demo up lint bench lock clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "pip>=24"
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install metgan with its pinned dependencies

test: $(STAMP)  ## the whole test suite (unit, integration, dags, e2e)
	$(BIN)/pytest

test-fast: $(STAMP)  ## unit and integration tests only
	$(BIN)/pytest tests/unit tests/integration -m "not slow"

test-embedded: $(STAMP)  ## the integration tests again, on the embedded PostgreSQL server
	METGAN_TEST_SERVER=embedded $(BIN)/pytest tests/integration tests/dags/test_pipeline.py

demo: $(STAMP)  ## the whole pipeline end to end on embedded defaults
	$(BIN)/python -m metgan.demo

up: $(STAMP)  ## airflow standalone with the project's DAGs, pools created
	$(BIN)/python -m metgan.demo --up

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)  ## every benchmark in bench/, each printing its table and a speedup line
	@set -e; for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

lock:  ## re-resolve the pinned dependencies (after editing pyproject.toml)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install -q "pip>=24"
	.lock-venv/bin/pip install -q -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .airflow .demo
