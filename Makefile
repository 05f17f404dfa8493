# Two set-up commands: `make run` (the app) and `make test` (the whole suite).
# Both create .venv on first use, install requirements.txt (every version pinned) into it and
# the package itself (editable: the checkout is what runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed
PYTEST := $(BIN)/python -m pytest -q --durations=25

.PHONY: run deploy test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the requirements or the package's metadata change.
$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dualviz serve

# PostgreSQL, two replicas and haproxy on loopback (README: "A department server").
deploy: $(STAMP)
	$(BIN)/python deploy/run.py

lint: $(STAMP)
	$(BIN)/ruff check .

# Everything: unit, property, AppTest, real servers and real browsers. Two worker processes,
# one test file at a time each (module fixtures stay per file): 660-845 s on a quiet 2-core machine
# (825 tests), where the browser tests mostly wait on their servers.
test: $(STAMP) lint
	$(PYTEST) -n 2 --dist loadfile

# The inner loop (under 3 minutes): no browser, no server, nothing marked slow.
test-fast: $(STAMP) lint
	$(PYTEST) -m "not browser and not server and not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_linear.py
	$(BIN)/python benchmarks/bench_three_layer.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
