# Two commands do all the set-up on a fresh machine:  `make demo`  and  `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: help deps test test-unit test-integration test-e2e test-conformance demo lint fmt bench kube-binaries oz-relayer clean

help:
	@echo "make demo              run the local stack and the demo story"
	@echo "make test              install what is missing, then run every test (unit, integration, e2e)"
	@echo "make test-unit         unit tests only (no services), for the inner loop"
	@echo "make test-integration  | make test-e2e | make test-conformance   one tier"
	@echo "make bench             benchmarks (JSON on stdout)"
	@echo "make lint              ruff"

.venv/.installed: pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check uv==0.13.8
	$(PY) -m uv pip install -q --python $(PY) -r requirements.lock -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: .debian-packages
.debian-packages:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; }
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }
	@command -v prometheus >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; }

kube-binaries:
	@tools/kube/build.sh >/dev/null
	@tools/helm/build.sh >/dev/null

# The real OZ Relayer, from $$MSQ_OZ_RELAYER_SRC or ../shared/vendor/ when present (else skipped, saying so).
oz-relayer:
	@tools/oz-relayer/build.sh >/dev/null

# The two long builds overlap: the Go one waits on module downloads for minutes, the cargo one on the CPU.
deps: .venv/.installed node_modules/.installed .debian-packages
	@$(MAKE) --no-print-directory -j2 kube-binaries oz-relayer

test: deps
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: .venv/.installed node_modules/.installed
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: deps
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test-e2e: deps
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

test-conformance: deps
	$(PY) -m pytest -m conformance $(PYTEST_ARGS)

demo: deps
	$(PY) -m msq_devstack.cli demo

bench: deps
	$(PY) -m bench

lint: .venv/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

fmt: .venv/.installed
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf .venv node_modules .pytest_cache .ruff_cache
