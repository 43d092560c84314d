# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make serve   start the API on an embedded PostgreSQL (GraphiQL at http://127.0.0.1:8000/graphql)
#   make test    lint (ruff), type-check (mypy), then run the whole test suite
#   make lint    just the lint and the type check
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/forecourt serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.bids

clean:
	rm -rf $(VENV) .forecourt .pytest_cache .ruff_cache .mypy_cache
