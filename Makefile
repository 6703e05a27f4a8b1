# Every entry point a person types. `make run` and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run serve ingest crosscheck test test-chaos lint bench bench-full dataset up down logs clean

# The virtual environment, rebuilt when a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

setup: $(STAMP) ## create the virtual environment and install everything

run: setup ## ingest what images/ holds, then serve API and UI on http://localhost:8000 (PORT)
	$(PY) -m ingest --if-empty-hint
	$(PY) -m gunicorn -c api/gunicorn_conf.py "api.wsgi:app"

serve: setup ## serve without ingesting first
	$(PY) -m gunicorn -c api/gunicorn_conf.py "api.wsgi:app"

COMPOSE ?= docker compose

# In the compose stack when it is up (path arguments are then container paths, /photos/...); else here,
# where a running `make run` service takes the work over (it owns the embedded shard).
ingest: ## make new photos in images/ searchable, without restarting the service
	@if command -v docker >/dev/null 2>&1 && $(COMPOSE) ps --services --filter status=running 2>/dev/null | grep -qx api; then \
		echo "The compose stack is up: ingesting in its ingest container."; \
		$(COMPOSE) run --rm ingest $(ARGS); \
	else \
		$(MAKE) --no-print-directory setup && $(PY) -m ingest $(ARGS); \
	fi

crosscheck: setup ## rerun the FAISS cross-check of Qdrant's answers
	$(PY) -m eval.crosscheck $(ARGS)

test: setup ## the whole test suite
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(ARGS)

test-chaos: setup ## the long attack runs of issue 19 (slow clients, worst-case uploads, a hung store)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m chaos $(ARGS)

lint: setup ## ruff and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: setup ## quick benchmark (bounded time); `make bench-full` for the published numbers
	$(PY) -m bench --quick

bench-full: setup
	$(PY) -m bench

dataset: setup ## download a CC-licensed landmark library into images/
	$(PY) -m dataset $(ARGS)

up: ## the compose stack (Qdrant server, api, web); needs QDRANT_API_KEY in .env
	$(COMPOSE) up -d --build

down:
	$(COMPOSE) down

logs:
	$(COMPOSE) logs -f --tail=100

clean: ## remove the virtual environment (data/ and images/ are kept)
	rm -rf $(VENV)
