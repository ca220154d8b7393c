# recstream: `make demo` and `make test` install what they need (a virtualenv in .venv) first.
#
# PyTorch is pinned to the CPU build by default. With an NVIDIA GPU, install a CUDA build instead:
#   make install TORCH_SPEC="torch" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
#   (cu126 or cu130 for other drivers)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.recstream-installed
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=
# `make test` leaves out tests marked slow; `make test-full` runs every test.
PYTEST_MARKERS ?= -m "not slow"

.PHONY: install demo test test-full lint check clean bench

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "recstream needs Python 3.11 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/recstream demo --log-format console --log-level warning

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_MARKERS) $(PYTEST_ARGS)

test-full: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks that take up to ~10 minutes each on the 2-core development machine (bench/README.md);
# results go to bench/results/. The 100,000-item end-to-end run is left out (see bench/README.md).
BENCH_STAMP := $(VENV)/.recstream-bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e ".[test,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(VENV)/bin/recstream bench encoder --log-level warning
	$(VENV)/bin/recstream bench store --log-level warning
	$(VENV)/bin/recstream bench e2e --items 10000 --log-level warning
	$(VENV)/bin/recstream bench scaling --log-level warning
	$(VENV)/bin/recstream bench behaviour --log-level warning
	$(VENV)/bin/recstream bench serve --log-level warning

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy

check: lint test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
