# make run   the main job: the local stack on Azurite with a sample run on mock models
# make test  everything CI runs: lint, type check and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov (the offline infra/ scan in tests/infra) has its own virtualenv: it pins
# packaging<24, which pytest 9 cannot use.
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# Azurite (devhost/azurite.py runs node_modules/.bin/azurite), installed apart from Python.
NPM_STAMP := node_modules/.package-lock.json

.PHONY: test lint typecheck install run clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# npm ci (re)creates node_modules and writes this file; touch it so it is newer than its inputs.
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

$(CHECKOV_STAMP): requirements-infra.txt | $(STAMP)
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-infra.txt
	touch $(CHECKOV_STAMP)

install: $(STAMP) $(NPM_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck $(CHECKOV_STAMP) $(NPM_STAMP)
	$(BIN)/python -m pytest

run: $(STAMP) $(NPM_STAMP)
	$(BIN)/python scripts/local_stack.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
