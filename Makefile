# Two commands on a fresh machine: `make demo` and `make test`. Both create the venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup system-deps demo test unit integration chaos bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"bookloop needs Python 3.11, found {sys.version}"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Debian packages the integration tests run for real (installed only when the binary is missing):
# prometheus-pushgateway (retrain metrics), prometheus (promtool checks metrics and alert rules) and
# docker-compose (`docker-compose config` validates docker-compose.yml; no Docker engine is needed).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@command -v prometheus-pushgateway >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq prometheus-pushgateway; }
	@command -v promtool >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq prometheus; }
	@command -v docker-compose >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq docker-compose; }

demo: setup
	$(VENV)/bin/bookloop demo

test: setup system-deps
	$(PY) -m pytest -q

unit: setup system-deps  # promtool checks the metric names and alert rules
	$(PY) -m pytest -q tests/unit

integration: setup system-deps
	$(PY) -m pytest -q tests/integration

# The fault-injection suite at full size (make test runs the same scenarios on a slice of the data);
# BOOKLOOP_CHAOS_SEED=<seed printed by a run> replays its schedule.
chaos: setup
	BOOKLOOP_CHAOS=full $(PY) -m pytest -q -s -p no:cacheprovider tests/integration/test_chaos_*.py

# Performance figures, each against a baseline measured in the same run (several minutes);
# writes bench/results/latest.md and latest.json. Never part of `make test`.
bench: setup
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) demo-data .pytest_cache
