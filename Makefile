# grenswacht — the commands a new user and CI run. Everything is installed by these
# targets (Python venv, Debian packages for the probe tests, Kafka jars, helm).
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export GRENSWACHT_CACHE ?= $(HOME)/.cache/grenswacht
SHARED_ATLAS ?= ../shared/data/atlas
APT_PACKAGES := scamper iproute2 nftables graphviz fonts-liberation chromium chromium-driver poppler-utils

.PHONY: setup system-deps run demo test test-fast lint docs translations screenshots kafka kafka-stop helm-check bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==26.3"
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# Debian packages: scamper for MDA/ICMP Paris and ip/nft for the network-namespace testbed
# (probe tests); graphviz draws the path pictures (`dot`), with fonts-liberation's Arial
# metrics; chromium (headless: the UI tests, the report's PDF, the screenshots; chromium-driver
# for WebDriver users) and poppler-utils (pdftotext: the report tests). Needs root; skipped
# (tests then skip with the reason) if not.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not root: install$$missing yourself for the probe tests"; fi; fi

# The main job on the embedded default: ingest the bundled real RIPE Atlas results, then
# run the embedded process (bus, ingest, endpoint; scheduler/probe when configured).
run: setup
	$(BIN)/grenswacht --config examples/grenswacht.toml ingest tests/fixtures/atlas/traceroute tests/fixtures/atlas/dns \
	  tests/fixtures/atlas/ping tests/fixtures/atlas/bulk_samples
	$(BIN)/grenswacht --config examples/grenswacht.toml run

# The whole flow offline against a loopback RIPE Atlas serving recorded real results.
demo: setup
	bash tools/demo.sh

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

# Regenerate the generated references (tests/test_docs.py checks they are current).
docs: setup
	$(BIN)/typer grenswacht.cli utils docs --name grenswacht --output docs/cli.md
	$(BIN)/python tools/settings_doc.py

# Extract the UI's and the report's strings and merge them into the catalogs; then fill in
# the empty msgstr of grenswacht/web/locale/nl/LC_MESSAGES/messages.po (docs/translating.md).
translations: setup
	$(BIN)/pybabel extract -F grenswacht/web/babel.cfg -k N_ --no-location --sort-output \
	  --omit-header -w 100 -o grenswacht/web/locale/messages.pot .
	$(BIN)/pybabel update -i grenswacht/web/locale/messages.pot -d grenswacht/web/locale -l nl \
	  --no-fuzzy-matching -w 100 --ignore-pot-creation-date

# The screenshots in docs/ (the bundled real data, in headless Chromium).
screenshots: setup
	$(BIN)/python tools/screenshots.py docs/screenshots

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
