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

.PHONY: setup setup-scores demo test test-fast lint bench clean

$(BIN)/musicaffect: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev,export,scores]"
	# musicnn's pretrained weights (ISC); --no-deps: its metadata pins numpy<1.17 and its code
	# needs TensorFlow, neither of which musicaffect uses (it reads the checkpoint files only)
	$(BIN)/pip install --quiet --no-deps "musicnn==0.1.0"
	@touch $@

setup: $(BIN)/musicaffect

# the real-music sample (`musicaffect sample-data --source scores`): music21 + a SoundFont
# renderer; tinysoundfont is the fastest renderer and declares pyaudio, which offline
# rendering never uses (it needs PortAudio headers to build), hence --no-deps
setup-scores: setup
	$(BIN)/pip install --quiet -e ".[scores]"
	$(BIN)/pip install --quiet --no-deps "tinysoundfont>=0.3.7"

demo: setup
	$(BIN)/musicaffect lab --sample $(DEMO)/sample-data --out $(DEMO) --budget quick

lint: setup
	$(BIN)/ruff check src tests bench tools

# everything but the GPU tests (under 10 minutes on 2 cores); test-fast skips the slow ones
test: lint
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not gpu"

# benchmarks (minutes to an hour: bench_read writes a full-size synthetic dataset once)
bench: setup
	$(BIN)/python bench/bench_extract.py
	$(BIN)/python bench/bench_read.py
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info src/*.egg-info
