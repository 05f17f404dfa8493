# Two set-up commands: `make run` (the app) and `make test` (the whole suite).
# Both create .venv on first use and install requirements.txt into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when requirements.txt changes.
$(STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m dualviz serve

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_linear.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
