# `make train` installs what training needs (no extras) and trains; `make test` adds the dev, docs and
# tfds extras and runs the suite. Each creates .venv on first use and keeps its own stamp, so either
# order works. `make test-min` runs the suite in .venv-min against the oldest supported versions.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
MIN_VENV := .venv-min
MIN_STAMP := $(MIN_VENV)/.installed-min

.PHONY: train test test-min typecheck lint docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[dev,tfds,docs]"
	touch $@

$(MIN_STAMP): pyproject.toml constraints-min.txt
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install -q --upgrade pip
	$(MIN_VENV)/bin/python -m pip install -q -c constraints-min.txt -e ".[dev]"
	touch $@

train: $(RUNTIME_STAMP)
	$(PY) -m jaxnn train --model cnn --dataset mnist1d

test: $(DEV_STAMP)
	$(PY) -m pytest -q -n 2

typecheck: $(DEV_STAMP)
	$(PY) -m mypy

test-min: $(MIN_STAMP)
	$(MIN_VENV)/bin/python -m pytest -q -n 2

lint: $(DEV_STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

docs: $(DEV_STAMP)
	$(PY) scripts/api_pages.py && NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

clean:
	rm -rf $(VENV) $(MIN_VENV) runs site
