# Every target bootstraps .venv from pyproject.toml by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBS := prometheus prometheus-alertmanager docker-compose nginx wrk gettext-base chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv debs test lint demo dashboards bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests run for real; installed only when missing.
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: venv debs lint
	$(BIN)/pytest

# The whole job on 127.0.0.1 with embedded defaults; DEMO_SECONDS=N stops after N s of
# traffic (more variables: examples/demo_config.py). `exec`: the demo is make's own child,
# so a SIGTERM that make passes on reaches it and it stops what it started. Ctrl-C reaches
# make and the demo alike (a terminal signals its whole foreground process group): the
# demo stops what it started and exits 0, so make reports no error; make then ends by the
# SIGINT it received, as GNU make does whatever its recipe returns, so the shell sees 130.
demo: venv
	@exec $(BIN)/python -m examples.demo

# grafana/dashboards/*.json from grafana/generate/, with the venv's grafana-foundation-sdk
# (a system Python has none). `make dashboards ARGS=--check` only compares.
dashboards: venv
	$(BIN)/python -m grafana.generate $(ARGS)

bench: venv debs
	$(BIN)/python benchmarks/proxy_overhead.py
	$(BIN)/python benchmarks/baseline_build.py
	$(BIN)/python benchmarks/sqlite_window.py
	$(BIN)/python benchmarks/es_ingest.py
	$(BIN)/python benchmarks/log_ingest.py
	$(BIN)/python benchmarks/detection_quality.py
	$(BIN)/python benchmarks/stats_eval.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
