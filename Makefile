# Two targets a new user needs: `make train` and `make test`. Each creates .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: train test lint clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[dev,tfds]"
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/jaxnn train --model mlp --dataset mnist1d --epochs 60 --lr 3e-3 --batch-size 100 \
		--model-config "hidden=(256,256)" --patience 10 --out runs/quickstart

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 2

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs
