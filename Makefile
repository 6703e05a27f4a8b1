# Every entry point a person types. `make run` and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run serve ingest crosscheck test lint bench bench-full dataset up down logs clean

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

ingest: setup ## make new photos in images/ searchable (hands the work to a running service)
	$(PY) -m ingest $(ARGS)

crosscheck: setup ## rerun the FAISS cross-check of Qdrant's answers
	$(PY) -m ingest.crosscheck $(ARGS)

test: setup ## the whole test suite
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(ARGS)

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

up: ## the compose stack (Qdrant server, api, web)
	docker compose up -d --build

down:
	docker compose down

logs:
	docker compose logs -f --tail=100

clean: ## remove the virtual environment (data/ and images/ are kept)
	rm -rf $(VENV)
