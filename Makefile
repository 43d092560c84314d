# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make serve   start the API on an embedded PostgreSQL (GraphiQL at http://127.0.0.1:8000/graphql)
#   make test    lint (ruff), type-check (mypy), then run the whole test suite
#   make lint    just the lint and the type check
# Dependencies are installed exactly as requirements.lock pins them (versions and hashes);
# `make lock` updates the lock after a change to pyproject.toml's dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

.PHONY: serve test lint install lock bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The lock: every runtime and test dependency, for every platform, with the hashes of all
# their files, resolved for Python 3.11 (the oldest supported). It keeps the pins it has unless
# asked: `make lock LOCK_ARGS=--upgrade` (everything) or `LOCK_ARGS="--upgrade-package NAME"`.
# uv goes in a folder of its own, outside the project's environment.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/uv/bin/uv || $(BIN)/python -m pip install --quiet --target $(VENV)/uv uv==$(UV_VERSION)
	$(VENV)/uv/bin/uv pip compile pyproject.toml --extra test --universal \
		--python-version 3.11 --generate-hashes --custom-compile-command "make lock" \
		--quiet --output-file requirements.lock $(LOCK_ARGS)

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
