# Accord's developer commands. `make help` lists them.
# The two that matter: `make demo` (the whole flow on synthetic data) and `make test`.
# Each sets up what it needs: the virtualenv, the Kafka jars, the OPA binary, the stack.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)
# The console's front-end assets: npm packages pinned by package-lock.json, compiled once.
ASSETS := services/accord/console/assets
ASSETS_STAMP := $(ASSETS)/node_modules/.built-$(shell cat $(ASSETS)/package-lock.json $(ASSETS)/scss/*.scss | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help assets browser demo test unit lint format lock stack-up stack-status stack-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

# Every dependency comes from requirements.lock, pinned and checked against its hashes;
# the package itself is installed without resolving anything more.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

# GOV.UK Frontend, MOJ Frontend, axe-core and sass from npm, exactly as locked.
$(ASSETS_STAMP): $(ASSETS)/package.json $(ASSETS)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 18 or newer) is needed for the console's assets"; exit 1; }
	cd $(ASSETS) && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build
	@rm -f $(ASSETS)/node_modules/.built-* && touch $@

assets: $(ASSETS_STAMP) ## install and compile the console's assets (npm ci)

demo: $(STAMP) $(ASSETS_STAMP) ## start the stack and run the whole flow on synthetic data
	$(BIN)/accord demo

# The console's browser tests drive Debian's Chromium (Playwright never downloads one).
# Installed here where apt is available and it is absent; elsewhere those tests skip.
browser: ## install headless Chromium for the console's browser tests (apt, where available)
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null; then \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq chromium; \
	else echo "no /usr/bin/chromium and no apt-get: the console's browser tests will skip"; fi

test: $(STAMP) $(ASSETS_STAMP) browser ## start the stack and run every test tier (unit, policy, integration)
	$(BIN)/accord stack up
	$(BIN)/accord schemas check
	$(BIN)/accord deploy check
	$(BIN)/ruff check services tests
	$(BIN)/ruff format --check services tests
	$(BIN)/python -m pytest

unit: $(STAMP) ## run the unit tests only (no processes needed)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP) ## check style without changing files
	$(BIN)/ruff check services tests
	$(BIN)/ruff format --check services tests
	$(BIN)/accord stack up --only opa >/dev/null && .cache/opa/*/opa fmt --list --fail policies && .cache/opa/*/opa check --strict policies

format: $(STAMP) ## format Python and Rego files in place
	$(BIN)/ruff format services tests
	$(BIN)/ruff check --fix services tests
	.cache/opa/*/opa fmt -w policies
	$(BIN)/accord policy stamp

lock: $(STAMP) ## re-pin every dependency (with hashes) after changing pyproject.toml
	echo "setuptools>=68" | $(BIN)/uv pip compile pyproject.toml - --extra test --generate-hashes \
		--python-version 3.11 --universal --quiet -o requirements.lock

stack-up: $(STAMP) $(ASSETS_STAMP) ## start Kafka, OPA and the schema registry (idempotent)
	$(BIN)/accord stack up

stack-status: $(STAMP) ## show each component of the local stack
	$(BIN)/accord stack status

stack-down: $(STAMP) ## stop the processes the stack started
	$(BIN)/accord stack down

clean: ## stop the stack and remove its state (keeps the tool cache)
	-$(BIN)/accord stack down
	rm -rf .state
