# The checks CI runs (.ci/run installs, then runs `make ci`), one target each.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: ci lint format types imports docs docs-check test test-fast

ci: lint types imports docs-check test

lint:  ## ruff: lint and formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:  ## ruff: fix what it can, then format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

types:  ## mypy: the package strictly, the tests and benchmarks too (pyproject.toml)
	$(BIN)/mypy

imports:  ## the layer contracts (import-linter, configured in pyproject.toml)
	$(BIN)/lint-imports

docs:  ## write the README's generated parts (command line, configuration table, module list)
	$(BIN)/cog -r README.md

docs-check:  ## the README's generated parts are up to date
	$(BIN)/cog --check README.md

test:  ## the README's test command
	$(BIN)/python -m pytest

test-fast:  ## without PostgreSQL, Redis and the browser
	$(BIN)/python -m pytest -m "not services"
