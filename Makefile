# leadflow — two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# test processes of `make test` (pytest-xdist; every test has its own database and topic prefix):
# most tests wait on the broker, consumer groups and child processes, so two halve the wall time here;
# tests marked `alone` (a memory bound under load) run afterwards, by themselves
TEST_WORKERS ?= 2

.PHONY: run test install bench bench-10m schemas clean lint report dashboards faults

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/leadflow run

test: $(STAMP)
	@bash scripts/ensure-debian-package.sh chromium chromium || echo "chromium not installed: the report screenshot test will be skipped"
	@bash scripts/ensure-debian-package.sh prometheus promtool prometheus || echo "prometheus not installed: alert tests will be skipped"
	$(PY) -m pytest -q -m "not slow and not alone" -n $(TEST_WORKERS) $(PYTEST_ARGS)
	$(PY) -m pytest -q -m "alone and not slow" $(PYTEST_ARGS)

# the fault suite (tests/faults/run.py): SIGKILLs, broker restart, warehouse outage, rebalances in both
# topologies, every run against the reference; one line per fault kind. `make test` runs a short version.
# First the tests marked slow: the longer variants of tests `make test` runs in a shorter form.
faults: $(STAMP)
	$(PY) -m pytest -q -m slow
	$(PY) -m tests.faults.run $(FAULTS_ARGS)

# the naive baseline is a Faust agent: faust-streaming is the `bench` extra, installed here only
BENCH_DEPS = $(PY) -m pip install -q -e '.[dev,bench]'

bench: $(STAMP)
	$(BENCH_DEPS)
	$(VENV)/bin/leadflow bench

# adds the 10M-event warehouse: its replay (~25 min, once; kept in var/bench) gives the peak RSS at 10M
bench-10m: $(STAMP)
	$(BENCH_DEPS)
	$(VENV)/bin/leadflow bench --query-sizes 1000000,10000000

schemas: $(STAMP)
	$(VENV)/bin/leadflow schemas export

report: $(STAMP)
	$(VENV)/bin/leadflow report --out var/report.html

dashboards: $(STAMP)
	$(VENV)/bin/leadflow grafana build

clean:
	rm -rf var .pytest_cache
