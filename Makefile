# musicaffect: two commands that work on a fresh machine.
#   make demo   set up, then run the whole lab on the bundled sample data (ends in a report)
#   make test   set up, then run the linter and the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO   ?= demo-output
# torch==2.13.0 is pinned first so pip takes the CPU build instead of a multi-GB CUDA one;
# set TORCH_SPEC="torch" (or another version) on a GPU machine.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test lint bench clean

$(BIN)/musicaffect: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev,export]"
	@touch $@

setup: $(BIN)/musicaffect

demo: setup
	$(BIN)/musicaffect lab --sample $(DEMO)/sample-data --out $(DEMO) --budget quick

lint: setup
	$(BIN)/ruff check src tests bench

test: lint
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info src/*.egg-info
