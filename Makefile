# The two commands of the quickstart: `make demo` and `make test`. Each sets up what it needs.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: test-tools demo test lint typecheck check emulator install plan simulate clean

DISTRIBUTIONS := core client worker components examples/symbols tools
SOURCES := core/src client/src worker/src components/src tools/src examples/symbols/src

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(DISTRIBUTIONS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build pinned for dev and CI machines; the GPU worker image installs a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	# Every distribution editable, so the repository's code is what runs; extras the tests exercise.
	$(BIN)/pip install -q -e core'[calendar]' -e client'[gcs]' -e worker'[gcs]' -e components -e examples/symbols -e tools'[dev]'
	touch $(STAMP)

install: $(STAMP)

emulator:
	@./scripts/ensure-emulator.sh

test-tools:
	@./scripts/ensure-test-tools.sh

demo: install emulator
	$(BIN)/asyncinfer demo

# The suite mostly waits on the emulator and on worker processes (about 3 CPU-minutes in a 16-minute
# serial run), so it runs in 3 processes even on 2 cores; each starts its own emulator.
TEST_WORKERS ?= 3

test: install emulator test-tools
	$(BIN)/pytest -q -n $(TEST_WORKERS)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy $(SOURCES)

check: lint typecheck test

plan: install
	$(BIN)/asyncinfer plan --stack symbols

simulate: install
	$(BIN)/asyncinfer simulate --trace traces/office_week.csv --config traces/configs/async.json --out .asyncinfer/simulate

clean:
	rm -rf .asyncinfer .pytest_cache .mypy_cache .ruff_cache
