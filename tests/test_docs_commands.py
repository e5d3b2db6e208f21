"""
Every command README.md and docs/ give is run by a test (through ``tests.docs_commands.documented``,
so the test runs what the docs say), by CI itself, or is listed here with the reason it cannot run.

A new documented command fails this test until it is walked or explained.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_commands import REPO_ROOT, Command, commands, documented

E2E = "tests/e2e/test_standalone_stack.py"

#: Command prefix -> (file that runs it, text that file contains where it does).
RUN_BY: dict[str, tuple[str, str]] = {
    "make run": (E2E, 'documented("README.md", "make run")'),
    "KAFKA_BOOTSTRAP_SERVERS=host:9092 make run": (E2E, "BOOTSTRAP_ENV: kafka_bootstrap"),
    "make stop": (E2E, 'documented("README.md", "make stop")'),
    "make status": (E2E, 'documented("docs/local-stack.md", "make status")'),
    "scripts/local airflow dags list": (E2E, '("scripts/local airflow dags list", "README.md"'),
    "scripts/local airflow dags list-runs": (E2E, '("scripts/local airflow dags list-runs", "docs/local-stack.md"'),
    "scripts/local airflow connections test aep_default": (E2E, '"scripts/local airflow connections test aep_default"'),
    "scripts/local airflow dags trigger": (
        E2E,
        'documented("docs/monitoring.md", "scripts/local airflow dags trigger")',
    ),
    "scripts/local airflow backfill create": (
        E2E,
        'documented("docs/backfills.md", "scripts/local airflow backfill create")',
    ),
    "curl -s 'http://127.0.0.1:8765/emulator/accepted": (E2E, 'documented("docs/local-stack.md", "curl -s'),
    "export AIRFLOW__": (E2E, 'for prefix in ("export AIRFLOW__METRICS__", "export AIRFLOW__OPENLINEAGE__")'),
    ".venv/bin/python -u -c 'import socket": (E2E, 'documented("docs/monitoring.md", ".venv/bin/python -u -c'),
    ".venv/bin/python -c 'import json": (E2E, 'documented("docs/monitoring.md", ".venv/bin/python -c'),
    "scripts/local aep-emulator": (
        "tests/scripts/test_devstack.py",
        'documented("docs/local-stack.md", "scripts/local aep-emulator")',
    ),
    "make wipe-kafka": ("tests/scripts/test_devstack.py", 'documented("docs/local-stack.md", "make wipe-kafka")'),
    ".venv/bin/python -m scripts.kafka_local": (
        "tests/scripts/test_kafka_local.py",
        '[sys.executable, "-m", "scripts.kafka_local"',
    ),
    # The doc gives both forms; the console script itself runs in test_devstack (scripts/local aep-emulator).
    "aep-emulator --port 8765": ("tests/emulator/test_cli.py", '[sys.executable, "-m", "aep_provider.emulator"'),
    "make bench": ("tests/bench/test_bench_smoke.py", "compare.main(argv)"),
    # CI runs these on every change (.ci/run); make install and make kafka-jars are their prerequisites.
    "make lint": (".ci/run", "make lint"),
    "make test": (".ci/run", "make test"),
    "make install": ("Makefile", "lint: $(LINT_STAMP)"),
    "make kafka-jars": ("Makefile", "test: kafka-jars"),
    ".venv/bin/pytest tests/engine": (".ci/run", "make test"),
    ".venv/bin/pytest tests/e2e/test_cluster.py": (".ci/run", "make test"),
    "make cluster": ("tests/e2e/test_cluster_command.py", 'start, stop = "make cluster"'),
    "make cluster-stop": ("tests/e2e/test_cluster_command.py", 'documented(DOC, "make cluster-stop")'),
    # CI builds the release and installs the BUILT wheel per supported Airflow (scripts/test_versions.py).
    "make dist": (".ci/run", "make dist test-versions"),
    "pip install dist/": ("scripts/test_versions.py", 'f"{wheel}[test]"'),
    # The cluster's start migrates its PostgreSQL database this way; tests/history/test_migrations.py
    # upgrades a database with the provider's tables as it does.
    "airflow db migrate": ("scripts/cluster.py", 'self._airflow("db", "migrate")'),
}

#: Command prefix -> why no test runs it.
NOT_RUN: dict[str, str] = {
    "docker compose": "no Docker engine on these machines; tests/scripts/test_compose.py checks docker-compose.yaml",
    "make lock": "re-resolves the dependencies against PyPI and rewrites constraints.txt: a maintainer's step",
    "make clean": "deletes the developer's .local/ (it is make stop, then rm -rf .local)",
    ".venv/bin/ruff format .": "rewrites the work tree; CI runs ruff format --check (make lint)",
    "export AIRFLOW_CONN_AEP_DEFAULT=": "a template with placeholders (<client id>); tests set it for the emulator (tests/fixtures/connections.py)",
    "export AIRFLOW_CONN_KAFKA_DEFAULT=": "a template (broker:9092); tests set it for their broker (tests/fixtures/airflow.py)",
}


def _entry(command: Command) -> str | None:
    """The longest registered prefix of ``command``."""
    keys = [k for k in (*RUN_BY, *NOT_RUN) if command.text.startswith(k)]
    return max(keys, key=len) if keys else None


def test_the_docs_give_commands_at_all():
    found = commands()
    assert len(found) > 40
    assert documented("docs/backfills.md", "scripts/local airflow backfill create").endswith(
        "--reprocess-behavior completed"
    )


def test_every_documented_command_is_run_by_a_test_or_says_why_not():
    unknown = [str(c) for c in commands() if _entry(c) is None]
    assert not unknown, (
        "documented commands no test runs: run each from a test through tests.docs_commands.documented() and "
        f"add it to RUN_BY, or say in NOT_RUN why it cannot run: {unknown}"
    )


def test_no_registered_command_is_gone_from_the_docs():
    used = {_entry(c) for c in commands()}
    assert not set(RUN_BY) - used and not set(NOT_RUN) - used, sorted((set(RUN_BY) | set(NOT_RUN)) - used)


@pytest.mark.parametrize("prefix", sorted(RUN_BY))
def test_where_a_command_runs_does_run_it(prefix: str):
    path, needle = RUN_BY[prefix]
    assert needle in Path(REPO_ROOT / path).read_text(encoding="utf-8"), (
        f"{path} no longer runs {prefix!r} ({needle!r})"
    )


def test_commands_are_read_as_a_shell_reads_them(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Run `make status` or `make`-style words.\n\n```bash\nmake run   # start it\n"
        'scripts/local airflow dags list \\\n    --output json\nexport X=\'{"a": "# not a comment",\n  "b": 1}\'\n```\n'
    )
    found = [c.text for c in commands([doc])]
    assert found == [
        "make run",
        "scripts/local airflow dags list --output json",
        'export X=\'{"a": "# not a comment",\n  "b": 1}\'',
        "make status",
    ]
