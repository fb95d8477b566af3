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

bench: install-test
	$(BIN)/python -m bench

bench-quick: install-test
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .ulak
