# Two commands from a fresh clone: `make serve` and `make test` (contract §7).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test install install-test lint bench bench-quick clean

$(BIN)/ulak: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.test-deps: $(BIN)/ulak
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/ulak

install-test: $(VENV)/.test-deps

serve: install
	$(BIN)/ulak serve

test: install-test
	bash scripts/test.sh

lint: install-test
	$(BIN)/ruff check ulak tests bench
	$(BIN)/ruff format --check ulak tests bench

$(VENV)/.bench-deps: $(VENV)/.test-deps
	$(BIN)/pip install -q -e '.[test,bench]'
	@touch $@

bench: $(VENV)/.bench-deps
	$(BIN)/python -m bench

bench-quick: $(VENV)/.bench-deps
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .ulak
