# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv from the lock file first.
PYTHON ?= python3
UV_BIN := $(shell command -v uv 2>/dev/null)
UV := $(if $(UV_BIN),$(UV_BIN),$(PYTHON) -m uv)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo ui docs import test test-scheduler test-cluster test-browser test-scale browser-deps test-fast lint typecheck bench bench-cluster lock clean

setup: $(STAMP)

$(STAMP): requirements-dev.lock pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@test -x $(PY) || $(UV) venv --quiet --python 3.11 $(VENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements-dev.lock  # .pyc now: PYTHONDONTWRITEBYTECODE=1 would make every process compile GX and Airflow again (3 s each)
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

demo: setup  ## the whole lifecycle on the embedded stack, state in .state/
	$(PY) -m market_mlops.dev.demo

ui: setup  ## Airflow's UI (:8080) and MLflow's UI (:5000) on the demo's state (or MLOPS_HOME); Ctrl-C stops both; UI_ARGS="--airflow-port 8081 --mlflow-port 5001 --unpaused"
	$(PY) -m market_mlops.dev.ui $(UI_ARGS)

docs: setup  ## the docs site (mkdocs, material theme) on http://127.0.0.1:8000; Ctrl-C stops it
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict -a 127.0.0.1:8000

test: setup browser-deps  ## every tier (what CI runs) in two lanes side by side: scale, browser | default, cluster, scheduler; then each tier's time
	$(PY) -m market_mlops.dev.tiers

test-cluster: setup  ## only the cluster tier (Celery, two workers in network namespaces; needs root)
	$(PY) -m pytest -m cluster

test-scale: setup  ## only the scale tier: 1,028 models through the retrain DAG (prints its timings)
	$(PY) -m pytest -m scale -s

test-browser: setup browser-deps  ## the Airflow UI in Debian's Chromium on the demo's state (~6 min)
	$(PY) -m pytest -m browser

browser-deps:  ## Debian's chromium for the browser tier (installed with apt-get when missing and run as root)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "error: the browser tier needs Debian's chromium: run 'sudo apt-get install chromium'" >&2; exit 1; }

test-scheduler: setup  ## only the scheduler tier (airflow standalone on PostgreSQL, ~10 min)
	$(PY) -m pytest -m scheduler

test-fast: setup  ## unit and DAG integrity tests only
	$(PY) -m pytest -m "not e2e and not integration and not scheduler and not cluster and not browser and not scale and not training"

lint: setup  ## ruff (with Airflow's AIR rules) and the type checker
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

typecheck: setup  ## mypy over include/ and plugins/ (settings in pyproject.toml)
	$(VENV)/bin/mypy

import: setup  ## load vendor history: make import FILES="path/or/folder s3://bucket/prefix" (see README "Your own data")
	@test -n "$(FILES)" || { echo "usage: make import FILES=path/to/csv/folder" >&2; exit 2; }
	$(VENV)/bin/market-mlops import $(FILES)

bench: setup  ## prints benchmark figures next to their targets; writes bench-results.json
	$(PY) -m market_mlops.dev.bench

bench-cluster: setup  ## the cluster tier, the same retrain on one Celery worker, drift per champion, the 2,000-model projection (~7 min, root)
	MLOPS_TIER_BENCH=1 $(PY) -m pytest -m cluster -s -q -p no:logging

LOCK_FLAGS := --python-version 3.11 --python-platform x86_64-manylinux_2_28
lock:  ## re-resolve both lock files, keeping current pins (needs the package index); the runtime set is a subset
	$(UV) pip compile requirements-dev.txt -c requirements.lock -o requirements-dev.lock $(LOCK_FLAGS)
	$(UV) pip compile requirements.txt -c requirements-dev.lock -o requirements.lock $(LOCK_FLAGS)

clean:  ## remove all run state (Airflow home, MLflow store, DVC cache and remote, data)
	rm -rf .state
