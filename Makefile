# Two commands get a newcomer going: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test install install-test lint format faults soak faults-doc bench compare clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml scripts/install-test-deps.sh | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	scripts/install-test-deps.sh
	touch $@

install: $(VENV)/.run-installed
install-test: $(VENV)/.test-installed

## make run: install into .venv and start the broker with data in ./data (Ctrl-C stops it)
run: install
	$(BIN)/dovecote serve

## make test: install test dependencies (Python and Debian packages) and run the whole suite
test: install-test lint
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check dovecote tests bench scripts
	$(BIN)/ruff format --check dovecote tests bench scripts

format: install-test
	$(BIN)/ruff format dovecote tests bench scripts
	$(BIN)/ruff check --fix dovecote tests bench scripts

## make faults: the reliability suite; prints its report table (rows in build/faults.jsonl)
faults: install-test
	$(BIN)/python -m pytest tests/faults -q

## make soak: the reliability suite at SOAK times its counts and time budgets (CI: e.g. SOAK=3)
SOAK ?= 10
soak: install-test
	DOVECOTE_FAULT_SCALE=$(SOAK) $(BIN)/python -m pytest tests/faults -q --timeout=$$((300 * $(SOAK)))

## make faults-doc: write the last run's table into docs/reliability.md (COMMAND names the run)
COMMAND ?= make faults
faults-doc:
	$(BIN)/python -m tests.faults.report --doc docs/reliability.md --command "$(COMMAND)"

## make bench: benchmarks side by side with peers; writes docs/benchmarks.md
bench: install-test
	scripts/install-bench-deps.sh
	$(BIN)/python -m bench

## make compare: the same Pub/Sub client tests against Dovecote and Google's emulator (needs it installed)
compare: install-test
	$(BIN)/python -m pytest tests/peers -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
