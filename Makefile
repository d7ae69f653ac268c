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

# Tests mostly wait on real servers and subprocesses, so one worker more than the cores keeps
# them busy; `--dist loadfile` keeps each module on one worker, so its shared servers and
# browser start once. `make test TEST_WORKERS=0` runs serially.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

test: setup
	@$(VENV)/bin/python -m compileall -q src tests >/dev/null  # bytecode for the many CLI subprocesses
	@$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
