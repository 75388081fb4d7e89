# The commands a person types. `make demo` runs the demo; `make test` runs lint and every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PKI := .dev/pki

.PHONY: install dev-pki demo lint test test-unit test-integration clean

# Create or reuse the virtual environment; reinstall when the project's metadata changes.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

# A development PKI under .dev/pki (git-ignored); kept if already there.
dev-pki: $(STAMP)
	$(BIN)/python -m tools.devpki $(PKI)

# Start Mutuelle ANS and the relay on loopback, send one exchange per case, keep both running.
demo: dev-pki
	$(BIN)/python -m tools.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy roc rpn mutuelle tools twisted/plugins

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest -q -m integration tests/integration

test: lint test-unit test-integration

clean:
	rm -rf .dev build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
