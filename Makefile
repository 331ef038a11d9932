# The two commands: `make run` (install, migrate, seed, start the whole stack) and `make test`.
# Only Python 3.11+ and make are needed; everything else is installed into .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
# The Procfile's web line reads WEB_PORT (a process runner may rewrite PORT for each process).
WEB_PORT := $(PORT)
export WEB_PORT HOST

# Without REDIS_URL the stack brings its own embedded Redis (a unix socket in var/).
PROCESSES := web worker beat$(if $(REDIS_URL),, redis)

.PHONY: run dev test test-fast lint typecheck bench install install-dev install-compare migrate seed clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# One pip run for the app and its dev extras (it installs the app too).
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

$(VENV)/.installed-compare: pyproject.toml $(VENV)/.installed-dev
	$(BIN)/pip install --quiet -e '.[dev,compare]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
# backtesting.py and vectorbt: the reference engines of tests/backtests/test_reference_engines.py
# (skipped without them) and bench/backtest.py. Never needed by the app.
install-compare: $(VENV)/.installed-compare

migrate: install
	$(BIN)/python manage.py migrate --no-input

seed: migrate
	$(BIN)/python manage.py seed_demo --url http://$(HOST):$(PORT)/

# tradingbot/supervisor.py restarts a process that dies (the others keep running) and stops them
# all on Ctrl-C; docs/operations.md, "Process supervision".
run: seed
	@echo "Starting $(PROCESSES) (Ctrl-C stops them all)"
	@$(BIN)/python -m tradingbot.supervisor -f Procfile $(PROCESSES)

# `make run` is the production run (DEBUG off unless the environment says otherwise); `make dev`
# is the same stack in debug mode.
dev: export DEBUG = true
dev: run

# The whole suite: the quick tier on a worker per core, then the process tier (real workers,
# daphne servers, the browser, the stack) one test at a time.
# (pytest exits 5 when PYTEST_ARGS leave a tier with no test: that is not a failure.)
test: install-dev
	$(BIN)/python -m pytest --fast -n auto --dist worksteal $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(BIN)/python -m pytest -m process $(PYTEST_ARGS) || [ $$? -eq 5 ]

# The quick tier, for working: every test that starts no real process (tests/README.md), on a
# pytest-xdist worker per core.
test-fast: install-dev
	$(BIN)/python -m pytest --fast -n auto --dist worksteal $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy tradingbot accounts strategies markets bots backtests

bench: install-dev
	@for script in bench/[!_]*.py; do [ -e "$$script" ] || continue; echo "== $$script"; $(BIN)/python "$$script" || exit 1; done

# compose.yaml built, started, smoke-checked on both daphne and removed again (deploy/compose-check;
# docs/operations.md, "Topology and scaling"). Needs docker and docker-compose.
.PHONY: compose-check
compose-check:
	deploy/compose-check

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
