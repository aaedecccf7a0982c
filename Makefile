# bf-jupyter: `make demo` starts JupyterLab on the embedded pool; `make test` installs and checks all.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMPS := .make-stamps
EXTRAS := dev,cluster,hub,tensorflow
PYTEST_ARGS ?=

# jlpm (yarn, from jupyter-builder in the venv) runs the sidebar's npm scripts in labextension/.
JLPM := PATH="$(abspath $(BIN)):$$PATH" $(abspath $(BIN))/jlpm
LABEXT_SOURCES := $(wildcard labextension/src/*.ts labextension/src/*.tsx labextension/style/*.* \
  labextension/style/icons/*.svg labextension/schema/*.json) labextension/package.json labextension/yarn.lock

.PHONY: help install demo test lint format pytest jstest cluster-binaries helm-binary protos clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The build hook (pyproject.toml) runs `jlpm install` + `jlpm build:prod` in labextension/ when the
# prebuilt sidebar is missing, so this also works from a clone without node_modules.
$(STAMPS)/python: pyproject.toml $(LABEXT_SOURCES) | $(BIN)/python
	rm -rf bf_jupyter/labextension
	$(BIN)/python -m pip install --quiet --editable ".[$(EXTRAS)]"
	@mkdir -p $(STAMPS) && touch $@

# The sidebar's dev tools (jest, eslint, prettier), pinned by labextension/yarn.lock.
$(STAMPS)/node: labextension/package.json labextension/yarn.lock | $(STAMPS)/python
	cd labextension && $(JLPM) install
	@mkdir -p $(STAMPS) && touch $@

# Debian's chromium drives the browser tests (Playwright never downloads a browser here).
$(STAMPS)/chromium:
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi; \
	fi
	@mkdir -p $(STAMPS) && touch $@

install: $(STAMPS)/python  ## Create .venv and install the project with every extra

# JupyterLab refuses to run as root without --allow-root (CI and containers often are root).
AS_ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)
DEMO_ARGS ?=
demo: install  ## Start JupyterLab with the extension on the embedded pool (bitfusion-sim)
	$(BIN)/bf-jupyter lab --backend local $(AS_ROOT_ARGS) $(DEMO_ARGS)

lint: install $(STAMPS)/node  ## ruff format --check, ruff check, mypy, import-linter, prettier, eslint
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	cd labextension && $(JLPM) lint:check

format: install $(STAMPS)/node  ## Rewrite sources with ruff format, ruff's fixes and prettier
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	cd labextension && $(JLPM) prettier

# The e2e tests' control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kubectl),
# built from the release pinned in tests/cluster/build/go.mod into a cache outside the checkout.
cluster-binaries:  ## Build (or reuse) the e2e control plane's binaries from the pinned release
	tests/cluster/build/build.sh

# The helm that installs cluster/helm/bf-jupyter in the e2e tests, pinned in its own module
# (tests/cluster/build/helm/go.mod) and cache folder, so moving it never rebuilds the control plane.
helm-binary:  ## Build (or reuse) the pinned helm the chart's tests use
	tests/cluster/build/helm/build.sh

pytest: install $(STAMPS)/chromium cluster-binaries helm-binary  ## Run the Python test suites only
	$(BIN)/pytest $(PYTEST_ARGS)

jstest: $(STAMPS)/node  ## Run the sidebar's jest tests
	cd labextension && $(JLPM) test

test: lint jstest pytest  ## Install every test dependency, then run all checks

# The device plugin's gRPC modules are committed; regenerate them after editing api.proto.
DEVICEPLUGIN_PROTO := bf_jupyter/cluster/deviceplugin/api.proto
protos: install  ## Regenerate the device plugin's gRPC modules from api.proto
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. $(DEVICEPLUGIN_PROTO)

clean:  ## Remove the virtual environment and build outputs
	rm -rf $(VENV) $(STAMPS) build dist .mypy_cache .ruff_cache .pytest_cache
	rm -rf labextension/node_modules labextension/lib labextension/tsconfig.tsbuildinfo bf_jupyter/labextension
