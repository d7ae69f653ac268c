# Two commands on a fresh machine: `make run` and `make test`. Both set everything up first.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup system run test lint bench clean

setup: system $(STAMP)

system:
	@scripts/install-system-packages.sh scripts/debian-packages.txt

$(STAMP): pyproject.toml scripts/setup-venv.sh
	@scripts/setup-venv.sh $(VENV)
	@touch $@

run: setup
	@$(VENV)/bin/homekeep serve

test: setup
	@$(VENV)/bin/python -m compileall -q src tests >/dev/null  # bytecode for the many CLI subprocesses
	@$(VENV)/bin/pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
