# Two commands on a fresh machine: `make demo` and `make test`. Both create or update .venv/ first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-output

.PHONY: demo test lint format bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/loce demo --out $(DEMO_OUT)

test: $(STAMP)
	./scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/fit_speed.py
	$(BIN)/python benchmarks/analysis_scale.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
