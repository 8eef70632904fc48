# Switchman developer entry points. `make demo` and `make test` work on a fresh
# machine with Go and Python 3.11; everything else is installed into .venv and
# the control-plane binaries are built into ~/.cache/switchman (see e2e/cluster).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
# The compiled hot paths (native/, Rust via PyO3): rebuilt when a source changes.
# rustup installs cargo into ~/.cargo/bin, which a non-login shell may not have on PATH.
export PATH := $(PATH):$(HOME)/.cargo/bin
NATIVE_SRC := $(shell find native -type f -not -path 'native/target/*' -not -name '*.pyc' | LC_ALL=C sort)
NATIVE_STAMP := $(VENV)/.native-$(shell cat $(NATIVE_SRC) | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help venv compiled generate check lint typecheck imports drift test unit e2e \
        cluster-build cluster-up cluster-down demo bench clean

help:
	@echo "make demo   - build the local control plane, install Switchman, run the demo"
	@echo "make test   - all tests (unit + end-to-end on a real kube-apiserver)"
	@echo "make check  - ruff, mypy --strict, import-linter, generated-file drift"
	@echo "make bench  - benchmarks (one JSON line each)"
	@echo "make cluster-up / cluster-down - the local control plane on 127.0.0.1"

venv: $(STAMP) $(NATIVE_STAMP) compiled
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check uv
	@$(VENV)/bin/uv pip install -q --python $(PY) -e '.[all,dev]'
	@rm -f $(VENV)/.installed-*; touch $@

# Needs cargo (rustup); the first build fetches its crates from crates.io (~30 s).
$(NATIVE_STAMP): $(STAMP) $(NATIVE_SRC)
	@command -v cargo >/dev/null || { echo "need cargo (Rust) to build native/"; exit 1; }
	@$(VENV)/bin/uv pip install -q --python $(PY) --reinstall-package switchman-native ./native
	@rm -f $(VENV)/.native-*; touch $@

# The request path compiled with mypyc (sidecar/switchman_sidecar/_compiled.py): ~1 min
# when a compiled module changed, a no-op otherwise. The sidecar loads it only while it
# matches the sources, so an edited module runs as plain Python until this reruns.
compiled: $(STAMP) $(NATIVE_STAMP)
	@$(PY) tools/build_compiled.py

generate: venv
	$(PY) tools/generate.py

check: lint typecheck imports drift
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cd tests/bench/loadgen && go vet . && test -z "$$(gofmt -l .)"
	cd native && cargo fmt --check && cargo clippy --release -- -D warnings
typecheck: venv
	$(VENV)/bin/mypy protos/switchman_protocol operator sidecar tools e2e/cluster
imports: venv
	$(VENV)/bin/lint-imports
drift: venv
	$(PY) tools/generate.py --check

cluster-build:
	@bash e2e/cluster/build.sh >/dev/null

# All tests. The end-to-end tests start their own control plane from the
# cached binaries; pytest exits 5 when nothing was collected, which fails here.
test: venv cluster-build
	$(PY) -m pytest $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest tests $(PYTEST_ARGS)

e2e: venv cluster-build
	$(PY) -m pytest e2e $(PYTEST_ARGS)

cluster-up: venv cluster-build
	$(PY) e2e/cluster/harness.py up

cluster-down: venv
	$(PY) e2e/cluster/harness.py down

demo: venv cluster-build
	$(PY) examples/demo.py

bench: venv
	@set -e; for b in tests/bench/bench_*.py; do echo "== $$b" >&2; $(PY) $$b; done

clean: cluster-down
	rm -rf $(VENV) .cluster .mypy_cache .ruff_cache .pytest_cache
