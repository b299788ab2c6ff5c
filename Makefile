# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
GPU    ?= 0

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
ifeq ($(GPU),1)
	$(BIN)/pip uninstall -q -y faiss-cpu
	$(BIN)/pip install -q faiss-gpu-cu12
endif
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash samples/round.sh

lint: $(STAMP)
	$(BIN)/ruff check alcli tests bench

test: lint
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python bench/kcenter.py

clean:
	rm -rf demo-out runs .pytest_cache .ruff_cache .hypothesis
