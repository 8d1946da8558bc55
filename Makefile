# lvisnb: the two commands of the README are `make demo` and `make test`.
# Both create .venv and install the package into it when missing (idempotent: the stamp file
# is newer than pyproject.toml once installed, so a second run installs nothing).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lvisnb-installed
RUN_DIR ?= runs/demo
export LVISNB_TOY_ROOT ?= $(CURDIR)/data/toy-lvis
export MPLBACKEND ?= Agg

.PHONY: demo test lint install toy bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

toy: $(STAMP)
	$(VENV)/bin/lvisnb toy $(LVISNB_TOY_ROOT) --if-absent

demo: toy
	$(VENV)/bin/lvisnb run --run-dir $(RUN_DIR) --html

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/analysis_scale.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/eval_scale.py --mem-limit-gb 21
	@echo 'learning check: make demo, then $(PY) benchmarks/learning_check.py'

clean:
	rm -rf runs data .pytest_cache .ruff_cache
