# One command to set up and run, one to set up and test. Each creates the
# virtual environment it needs (.venv) from pyproject.toml on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	bash packaging/linux-deps.sh window
	$(BIN)/cachestudio

demo: $(STAMP)
	$(BIN)/cachestudio run --strategy all --duration 10 --seed 7

test: $(STAMP)
	bash packaging/linux-deps.sh offscreen
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
