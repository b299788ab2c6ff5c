# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when needed.
# .venv gets exactly the versions in constraints.txt (pyproject.toml has lower bounds only: see README, Install).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
GPU    ?= 0
# Label Studio lives in its own venv: its pins (Django, ...) would fight ours. Only the integration tests use it.
LS_VENV  := .venv-ls
LS_STAMP := $(LS_VENV)/.installed

# Tests in two tiers (README, Two commands): `make test` is the fast tier (every command and strategy, the
# brute-force properties, a seeded sample of the fuzz corpus; about 5 minutes on 2 cores); `make test-all`
# adds the slow tier (tests marked slow: the whole fuzz corpus, FixMatch trainings, soaks, experiment runs).
# Label Studio has its own target. .ci/run runs all three.
# Two pytest-xdist workers, a test file per worker at a time (--dist loadfile), so a module's fixture (a trained
# model, the fuzz's artifacts) is built once, not once per worker. `make test XDIST=` runs serially.
PYTEST   := $(BIN)/python -m pytest -q -p no:cacheprovider
XDIST    ?= -n 2 --dist loadfile

.PHONY: setup demo label-demo test test-all test-slow test-integration lint typecheck bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
ifeq ($(GPU),1)
	$(BIN)/pip uninstall -q -y faiss-cpu
	$(BIN)/pip install -q -c constraints.txt faiss-gpu-cu12
endif
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash samples/round.sh

lint: $(STAMP)
	$(BIN)/ruff check alcli tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(PYTEST) $(XDIST) tests -m "not labelstudio and not slow"

# The slow tier alone (.ci/run runs it after `make test`), and both tiers in one run.
test-slow: $(STAMP)
	$(PYTEST) $(XDIST) tests -m "slow and not labelstudio"

test-all: lint typecheck
	$(PYTEST) $(XDIST) tests -m "not labelstudio"

$(LS_STAMP): constraints-labelstudio.txt
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q -c constraints-labelstudio.txt 'label-studio>=1.23,<1.24'
	touch $(LS_STAMP)

# Against a real Label Studio (installed into .venv-ls, started on 127.0.0.1 by the tests, offline).
test-integration: $(STAMP) $(LS_STAMP)
	$(PYTEST) tests -m labelstudio

label-demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash samples/label-round.sh

bench: $(STAMP)
	$(BIN)/python bench/kcenter.py

clean:
	rm -rf demo-out label-demo-out runs .pytest_cache .ruff_cache .hypothesis
