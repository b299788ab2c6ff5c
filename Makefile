# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
GPU    ?= 0
# Label Studio lives in its own venv: its pins (Django, ...) would fight ours. Only the integration tests use it.
LS_VENV  := .venv-ls
LS_STAMP := $(LS_VENV)/.installed

.PHONY: setup demo label-demo test test-integration lint typecheck bench clean

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

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q tests -m "not labelstudio"

$(LS_STAMP):
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q 'label-studio>=1.23,<1.24'
	touch $(LS_STAMP)

# Against a real Label Studio (installed into .venv-ls, started on 127.0.0.1 by the tests, offline).
test-integration: $(STAMP) $(LS_STAMP)
	$(BIN)/python -m pytest -q tests -m labelstudio

label-demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash samples/label-round.sh

bench: $(STAMP)
	$(BIN)/python bench/kcenter.py

clean:
	rm -rf demo-out label-demo-out runs .pytest_cache .ruff_cache .hypothesis
