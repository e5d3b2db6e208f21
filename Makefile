# aep-provider developer commands. Only python3 (3.11+), Java 17+ and Maven are assumed.
#   make install   .venv with the provider (editable) and test tools, versions pinned by constraints.txt
#   make test      install + Kafka jars + the whole test suite
#   make run       the local stack: Kafka, AEP emulator, Airflow (stop with `make stop`)
#   make stop      stop the local stack (Kafka's data is kept for the next `make run`)
#   make wipe-kafka   delete the local stack's Kafka data (topics, records, committed offsets)
#   scripts/local airflow ...   the Airflow CLI (or aep-emulator, ...) against the local stack
#   make cluster   the same stack as a cluster: PostgreSQL, Redis, CeleryExecutor with two workers (CLUSTER_ARGS="--api-port 8090 ...")
#   make cluster-stop  stop the cluster
#   make lock      re-pin constraints.txt after changing dependencies in pyproject.toml
#   make lint      ruff check, ruff format --check, mypy, docs tables (tools pinned here, installed into .venv on first use)
#   make bench     limit vs peer vs ours on one topic (BENCH_ARGS="--events 800000 --write BENCHMARKS.md")

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
PYTEST_ARGS ?=
BENCH_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: install test run stop status lock kafka-jars kafka clean bench lint wipe-kafka cluster cluster-stop

install: $(STAMP)

# Re-runs only when the dependencies (or their pins) changed, so `make test` stays fast.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "make install: Python 3.11+ is needed, $(PYTHON) is " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) pip install --quiet --python $(PY) --constraint constraints.txt -e '.[test,cluster]'
	@touch $@

lock: $(STAMP)
	$(UV) pip compile pyproject.toml --extra test --extra cluster --python-version 3.11 --no-header --quiet -o constraints.txt

kafka-jars: $(STAMP)
	@$(PY) -m scripts.kafka_local fetch

# A broker in the foreground on 127.0.0.1:9092 (Ctrl-C stops it); `make run` starts one detached.
kafka: kafka-jars
	$(PY) -m scripts.kafka_local start --port 9092

# pytest's own exit code decides; 5 ("no tests collected") is a failure like any other.
test: kafka-jars
	$(PY) -m pytest $(PYTEST_ARGS)

RUFF_VERSION := 0.17.5
MYPY_VERSION := 2.4.1
LINT_STAMP := $(VENV)/.lint-$(RUFF_VERSION)-$(MYPY_VERSION)

$(LINT_STAMP): $(STAMP)
	$(UV) pip install --quiet --python $(PY) "ruff==$(RUFF_VERSION)" "mypy==$(MYPY_VERSION)" "types-requests==2.33.0.20261030"
	@touch $@

# Lint and format check; configuration in pyproject.toml. Also checks the generated tables in docs/connection.md.
lint: $(LINT_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m scripts.gen_docs --check

# Starts its own broker and emulator; see bench/compare.py for the cases and options.
bench: kafka-jars
	$(PY) -m bench.compare $(BENCH_ARGS)

# RUN_ARGS: devstack start options, e.g. RUN_ARGS='--api-port 8081 --rate 0'
RUN_ARGS ?=
run: kafka-jars
	$(PY) -m scripts.devstack start $(RUN_ARGS)

stop:
	@if [ -x $(PY) ]; then $(PY) -m scripts.devstack stop; else echo "nothing to stop (no $(VENV))"; fi

wipe-kafka:
	@if [ -x $(PY) ]; then $(PY) -m scripts.devstack wipe-kafka; else rm -rf .local/kafka; fi

CLUSTER_ARGS ?=
cluster: kafka-jars
	$(PY) -m scripts.cluster start $(CLUSTER_ARGS)

cluster-stop:
	@if [ -x $(PY) ]; then $(PY) -m scripts.cluster stop; else echo "nothing to stop (no $(VENV))"; fi

status: $(STAMP)
	@$(PY) -m scripts.devstack status

clean: stop cluster-stop
	rm -rf .local
