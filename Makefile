# grenswacht — the commands a new user and CI run. Everything is installed by these
# targets (Python venv, Debian packages for the probe tests, Kafka jars, helm).
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export GRENSWACHT_CACHE ?= $(HOME)/.cache/grenswacht
SHARED_ATLAS ?= ../shared/data/atlas
APT_PACKAGES := scamper iproute2 nftables

.PHONY: setup system-deps run demo test test-fast lint kafka kafka-stop helm-check bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==26.3"
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# Debian packages the probe tests use (scamper for MDA/ICMP Paris; ip and nft for the
# network-namespace testbed). Needs root; skipped (tests then skip with the reason) if not.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not root: install$$missing yourself for the probe tests"; fi; fi

# The main job on the embedded default: ingest the bundled real RIPE Atlas results, then
# run the embedded process (bus, ingest, endpoint; scheduler/probe when configured).
run: setup
	$(BIN)/grenswacht ingest tests/fixtures/atlas/traceroute tests/fixtures/atlas/dns \
	  tests/fixtures/atlas/ping tests/fixtures/atlas/bulk_samples
	$(BIN)/grenswacht run

# Everything the tests need, then the whole suite against a real Kafka broker.
test: setup system-deps
	$(BIN)/python tools/kafka/broker.py fetch
	$(BIN)/ruff check .
	$(BIN)/mypy
	bash tools/test.sh

test-fast: setup
	$(BIN)/pytest -q -m "not slow and not kafka and not netns"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

kafka: setup
	$(BIN)/python tools/kafka/broker.py fetch
	$(BIN)/python tools/kafka/broker.py start

kafka-stop:
	$(BIN)/python tools/kafka/broker.py stop

helm-check: setup
	bash tools/helm/check.sh

bench: setup
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
