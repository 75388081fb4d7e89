# The commands a person types. `make demo` runs the demo; `make test` runs lint and every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PKI := .dev/pki

.PHONY: install system-deps bench-deps dev-pki demo lint test test-unit test-integration bench bench-mutuelle bench-scrape clean

# Debian packages the tests use as real peers: openssl s_client, curl, systemd-analyze and
# systemd-socket-activate, Prometheus (with promtool), Alertmanager (amtool checks the routing),
# headless Chromium, xmlsec1 (the independent
# XML-signature implementation the signature tests check against), PostgreSQL (the tests start
# their own server with initdb/pg_ctl). Installed only when missing; needs root (or sudo).
SYSTEM_PACKAGES := openssl curl systemd prometheus prometheus-alertmanager chromium xmlsec1 postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Create or reuse the virtual environment; reinstall when the project's metadata changes.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# A development PKI under .dev/pki (git-ignored); kept if already there.
dev-pki: $(STAMP)
	$(BIN)/python -m tools.devpki $(PKI)

# Start Mutuelle ANS and the relay on loopback, send one exchange per case, keep both running.
demo: dev-pki
	$(BIN)/python -m tools.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy piano roc rpn mutuelle indicators tools twisted/plugins

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# The Node.js SOAP client the integration tests drive (real WSDL consumer).
NODE_CLIENTS := tests/integration/soap_clients/node_modules/.package-lock.json
$(NODE_CLIENTS): tests/integration/soap_clients/package.json tests/integration/soap_clients/package-lock.json
	npm ci --prefix tests/integration/soap_clients --no-audit --no-fund

test-integration: $(STAMP) system-deps $(NODE_CLIENTS)
	$(BIN)/pytest -q -m integration tests/integration

test: lint test-unit test-integration

# Benchmarks: never part of `make test`; they print ratios against peers run side by side.
# Debian packages of the relay benchmark's peers and load generator; installed when missing.
BENCH_PACKAGES := haproxy nginx golang-go
BENCH_ARGS ?=

bench-deps:
	@missing=""; for p in $(BENCH_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The relay next to HAProxy, nginx and a direct connection, in the same run (~12 min).
bench: bench-deps $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-mutuelle: $(STAMP)
	command -v wrk >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk)
	test -x /usr/lib/postgresql/15/bin/initdb || $(MAKE) system-deps
	npm ci --prefix bench/mutuelle --no-audit --no-fund
	$(BIN)/python bench/mutuelle/run.py

bench-scrape: $(STAMP)
	$(BIN)/python bench/scrape_cost.py --disable-created

clean:
	rm -rf .dev build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
