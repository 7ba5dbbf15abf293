# Two commands on a fresh machine with Python 3.11+ and make:
#   make run    set everything up and run the whole service (Ctrl-C stops it)
#   make test   set everything up and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: run test check setup bench fuzz screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(DEV): requirements-dev.txt $(RUNTIME)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(RUNTIME)
	$(BIN)/python -m llmproxy setup

run: $(RUNTIME)
	$(BIN)/python -m llmproxy run

# Lint, formatting and types first (seconds), then the whole suite.
check: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fuzz suite alone, long: FUZZ_EXAMPLES cases per operation and mode (`make test` runs a few of each).
FUZZ_EXAMPLES ?= 500
fuzz: $(DEV)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/fuzz --timeout=1800 -s $(PYTEST_ARGS)

# The dashboard's pages at 1280 px and 390 px, as the browser tests see them, into screenshots/.
screenshots: $(DEV)
	SCREENSHOT_DIR=screenshots $(BIN)/python -m pytest tests/browser $(PYTEST_ARGS)

bench: $(DEV)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
