"""Helpers of the end-to-end tests against a real ``airflow standalone``."""

from __future__ import annotations

from scripts.devstack import DevStack
from scripts.kafka_local import tail


def diagnostics(stack: DevStack, lines: int = 30) -> str:
    """Tails of Airflow's own log and of the newest task log, for failure messages."""
    parts = [f"--- {stack.logs_dir / 'airflow.log'}:\n{tail(stack.logs_dir / 'airflow.log', lines)}"]
    task_logs = sorted((stack.airflow_home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)
    if task_logs:
        parts.append(f"--- {task_logs[-1]}:\n{tail(task_logs[-1], lines)}")
    return "\n".join(parts)
