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

test-fast: $(STAMP)  ## the unit tier: pure tests, an answer in about a minute (docs/testing.md)
	$(BIN)/pytest tests/unit -m "not slow"

test-embedded: $(STAMP)  ## the integration tests again, on the embedded PostgreSQL server
	METGAN_TEST_SERVER=embedded $(BIN)/pytest tests/integration tests/dags/test_pipeline.py

demo: $(STAMP)  ## the whole pipeline end to end on embedded defaults
	$(BIN)/python -m metgan.demo

up: $(STAMP)  ## airflow standalone with the project's DAGs, pools created (FAKE_MET=1: scrape the fake Met)
	$(BIN)/python -m metgan.demo --up $(if $(FAKE_MET),--fake-met)

lint: $(STAMP)
	$(BIN)/ruff check .

# `make bench BENCH_ARGS=--quick` runs each one at tiny sizes (seconds), as the smoke tests do.
# gpu_check.sh exits 2 where TensorFlow sees no GPU: that is reported, not a failure of the run.
bench: $(STAMP)  ## every benchmark in bench/, each printing its table and a speedup line
	@set -e; for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b $(BENCH_ARGS); done; \
	echo "== bench/gpu_check.sh"; status=0; bash bench/gpu_check.sh $(BENCH_ARGS) || status=$$?; \
	if [ $$status -eq 2 ]; then echo "bench/gpu_check.sh: no GPU here, so no GPU numbers"; \
	elif [ $$status -ne 0 ]; then exit $$status; fi

lock:  ## re-resolve the pinned dependencies (after editing pyproject.toml)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install -q "pip>=24"
	.lock-venv/bin/pip install -q -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .airflow .demo
