# Two commands on a fresh Debian machine:
#   make run    build the sample Tianhe twin and its tiles, serve viewer + APIs on 127.0.0.1
#   make test   run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TWIN_DIR ?= build/tianhe
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup system node twin tiles serve bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

node: system
	bash scripts/install_node_deps.sh

system:
	bash scripts/setup-system.sh

setup: system $(VENV)/.installed node

twin: setup
	$(BIN)/twin build data/tianhe/city.toml --out $(TWIN_DIR)

tiles: twin
	$(BIN)/twin tiles $(TWIN_DIR)

run: tiles
	bash scripts/serve.sh $(TWIN_DIR) $(HOST) $(PORT)

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile -q -m "not gpu"

bench: setup
	$(BIN)/python bench/bench_build.py --buildings 100000

clean:
	rm -rf build test-artifacts .pytest_cache
