# One command to set up and run, one to set up and test. Each creates the
# virtual environment it needs (.venv) from pyproject.toml on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

PKG_STAMP := $(VENV)/.installed-package

.PHONY: run test lint demo docs package test-deb clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

run: $(STAMP)
	bash packaging/linux-deps.sh window
	$(BIN)/cachestudio

demo: $(STAMP)
	$(BIN)/cachestudio run --strategy all --duration 10 --seed 7

# Two workers (pytest-xdist, a test file whole on one: pyproject.toml): most tests wait on
# real lab processes and servers, so two files at a time finish sooner even on two cores.
test: lint
	bash packaging/linux-deps.sh offscreen
	$(BIN)/python -m pytest -n 2

# The linter and the type checker (settings in pyproject.toml); `make test` runs them first.
lint: $(STAMP)
	$(BIN)/ruff check cachestudio tests
	$(BIN)/ruff format --check cachestudio tests
	$(BIN)/mypy

# The lesson guides (docs/lessons/): pictures rendered by the window, the claims and numbers
# of a real run of each lesson; and the lesson table of README.md. Never edit them by hand.
docs: $(STAMP)
	$(BIN)/cachestudio docs --out docs/

# The installers, under dist/: wheel, sdist, PyInstaller bundle (tar.gz) and .deb
# (packaging/build.sh; installs the Debian build tools it lacks, with sudo when not root).
$(PKG_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,package]'
	touch $(PKG_STAMP)

package: $(PKG_STAMP)
	bash packaging/build.sh $(BIN)/python

# Install the .deb that `make package` built, use it, purge it (as root, or with sudo).
test-deb:
	bash packaging/test-deb.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
