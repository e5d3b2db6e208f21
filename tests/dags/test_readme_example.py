"""The README's example DAG parses, with no connection defined, into one KafkaToAEPOperator task."""

from __future__ import annotations

import importlib.util
import re
import uuid
from pathlib import Path

from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_parses(tmp_path):
    (source,) = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    path = tmp_path / "readme_example.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"readme_{uuid.uuid4().hex[:6]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no connection exists here: parsing must not need one
    (task,) = module.dag.tasks
    assert isinstance(task, KafkaToAEPOperator)
    assert task.task_id == "drain_aep_events"
    assert task.dlq_topic == "aep.events.dlq"
