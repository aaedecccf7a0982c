# bf-jupyter: `make demo` starts JupyterLab on the embedded pool; `make test` installs and checks all.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMPS := .make-stamps
EXTRAS := dev,cluster,hub,tensorflow
PYTEST_ARGS ?=

.PHONY: help install demo test lint format pytest protos clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMPS)/python: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable ".[$(EXTRAS)]"
	@mkdir -p $(STAMPS) && touch $@

# Debian's chromium drives the browser tests (Playwright never downloads a browser here).
$(STAMPS)/chromium:
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi; \
	fi
	@mkdir -p $(STAMPS) && touch $@

install: $(STAMPS)/python  ## Create .venv and install the project with every extra

demo: install  ## Start JupyterLab with the extension on the embedded pool (bitfusion-sim)
	$(BIN)/bf-jupyter lab --backend local

lint: install  ## ruff format --check, ruff check, mypy, import-linter
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install  ## Rewrite sources with ruff format and ruff's fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

pytest: install $(STAMPS)/chromium  ## Run the Python test suites only
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint pytest  ## Install every test dependency, then run all checks

# The device plugin's gRPC modules are committed; regenerate them after editing api.proto.
DEVICEPLUGIN_PROTO := bf_jupyter/cluster/deviceplugin/api.proto
protos: install  ## Regenerate the device plugin's gRPC modules from api.proto
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. $(DEVICEPLUGIN_PROTO)

clean:  ## Remove the virtual environment and build outputs
	rm -rf $(VENV) $(STAMPS) build dist .mypy_cache .ruff_cache .pytest_cache
