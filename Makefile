# Every entry point a person types. `make run` and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
# Where torch comes from: empty = PyPI (on Linux the CUDA build); https://download.pytorch.org/whl/cpu
# for the CPU build on a machine without an NVIDIA GPU (see README).
TORCH_INDEX_URL ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run serve ingest crosscheck eval test test-chaos lint bench bench-full bench-scale dataset up down logs clean \
	backup restore reindex cells up-metrics

# The virtual environment, rebuilt when a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX_URL),$(PY) -m pip install --quiet --index-url $(TORCH_INDEX_URL) "$$(grep -E '^torch==' requirements.txt)")
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

setup: $(STAMP) ## create the virtual environment and install everything

run: setup ## serve API and UI on http://localhost:8000 (PORT) at once, indexing images/ in the background
	$(PY) -m api.launch

serve: setup ## serve what is already indexed, without indexing or downloading anything at start
	INDEX_ON_START=false FETCH_DATASET_IF_EMPTY=false $(PY) -m api.launch

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

# Operations (README: "Metrics", "Backups", "Re-indexing with another model"). Like `make ingest`: in the
# compose stack's ingest container when it is up (archives then go to the app_data volume, /data/backups),
# else here, where a running `make run` service takes the work over.
STACK_UP = command -v docker >/dev/null 2>&1 && $(COMPOSE) ps --services --filter status=running 2>/dev/null | grep -qx api

backup: ## one archive of everything a restore needs, while the service runs (ARGS="--archive PATH")
	@if $(STACK_UP); then \
		$(COMPOSE) run --rm -e BACKUP_DIR=/data/backups --entrypoint python ingest -m ops.backup $(ARGS); \
	else \
		$(MAKE) --no-print-directory setup && $(PY) -m ops.backup $(ARGS); \
	fi

restore: ## bring a backup back, service stopped: make restore ARCHIVE=backups/wonders-....tar (ARGS=--force)
	@test -n "$(ARCHIVE)" || { echo "usage: make restore ARCHIVE=path/to/backup.tar [ARGS=--force]"; exit 2; }
	@$(MAKE) --no-print-directory setup && $(PY) -m ops.restore "$(ARCHIVE)" $(ARGS)

reindex: ## re-encode every photo with another model, then switch: make reindex CLIP_MODEL=name-or-folder
	@test -n "$(CLIP_MODEL)" || { echo "usage: make reindex CLIP_MODEL=<the new model>"; exit 2; }
	@if $(STACK_UP); then \
		$(COMPOSE) run --rm --entrypoint python ingest -m ops.reindex --model "$(CLIP_MODEL)" $(ARGS); \
	else \
		$(MAKE) --no-print-directory setup && $(PY) -m ops.reindex --model "$(CLIP_MODEL)" $(ARGS); \
	fi

cells: ## train the cells that route text queries in a big library now (ingest does it from CELLS_MIN_PHOTOS)
	@if $(STACK_UP); then \
		$(COMPOSE) run --rm --entrypoint python ingest -m ops.cells $(ARGS); \
	else \
		$(MAKE) --no-print-directory setup && $(PY) -m ops.cells $(ARGS); \
	fi

crosscheck: setup ## rerun the FAISS cross-check of Qdrant's answers
	$(PY) -m ingest.crosscheck_cli $(ARGS)

eval: setup ## measure the answers on labelled photos (ARGS: see README, Evaluation)
	$(PY) -m eval $(ARGS)

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

bench-scale: setup ## a million 768-d vectors in the embedded store (long: ~15 min a layout on 2 cores, float32 longer; ARGS=--size 100000)
	$(PY) -m bench.scale $(ARGS)

dataset: setup ## download a CC-licensed landmark library into images/
	$(PY) -m dataset $(ARGS)

# The compose stack needs Docker's compose plugin; say so plainly instead of docker's own error.
define need_compose
	@$(COMPOSE) version >/dev/null 2>&1 || { \
		echo "'$(COMPOSE)' is not available: install Docker with its compose plugin (docs.docker.com/compose/install), or set COMPOSE=docker-compose. Without Docker, \`make run\` serves everything here."; \
		exit 1; }
endef

up: ## the compose stack (Qdrant server, api, web); needs QDRANT_API_KEY in .env
	$(need_compose)
	@test -n "$$QDRANT_API_KEY" || grep -qsE '^QDRANT_API_KEY=[^[:space:]]+' .env || { \
		echo "Set QDRANT_API_KEY in .env first (e.g. echo QDRANT_API_KEY=\$$(openssl rand -hex 32) >> .env): the stack's Qdrant server refuses to start without one."; \
		exit 1; }
	$(COMPOSE) up -d --build

up-metrics: ## the compose stack with Prometheus scraping the API (profile "metrics")
	$(COMPOSE) --profile metrics up -d --build

down:
	$(need_compose)
	$(COMPOSE) --profile metrics down

logs:
	$(need_compose)
	$(COMPOSE) logs -f --tail=100

clean: ## remove the virtual environment (data/ and images/ are kept)
	rm -rf $(VENV)
