"""The scale-out example in docs/scaling-out.md (mapped instances on one group) parses and runs green with dag.test()."""

from __future__ import annotations

import importlib.util
import re
import uuid
from pathlib import Path

import pytest

from tests.engine.support import committed, produce, received

SCALING_DOC = Path(__file__).resolve().parents[2] / "docs" / "scaling-out.md"


def _doc_example() -> str:
    """The python block of docs/scaling-out.md that maps the operator."""
    section = SCALING_DOC.read_text()
    blocks = [re.sub(r"^  ", "", b, flags=re.M) for b in re.findall(r"```python\n(.*?)```", section, flags=re.S)]
    (example,) = [b for b in blocks if ".expand(" in b]
    return example


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"scaled_{uuid.uuid4().hex[:6]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_doc_example_parses_into_three_mapped_instances(tmp_path):
    path = tmp_path / "scaled.py"
    path.write_text(_doc_example())
    dag = _load(path)  # no connection exists here: parsing must not need one
    task = dag.get_task("drain")
    assert type(task).__name__ == "MappedOperator"
    assert task.expand_input.value == {"max_in_flight": [4, 4, 4]}
    assert task.partial_kwargs["topics"] == "aep.events"


@pytest.mark.integration
@pytest.mark.e2e
def test_doc_example_runs_green_and_delivers_each_record_once(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, aep_emulator, monkeypatch
):
    from tests.fixtures.connections import aep_connection_json

    topic = make_topic(partitions=3, prefix="aep.events")
    produce(kafka_bootstrap, topic, 3, 100)
    group = f"g-{uuid.uuid4().hex[:10]}"
    make_kafka_conn(conn_id="kafka_default", group_id=group)
    monkeypatch.setenv("AIRFLOW_CONN_AEP_DEFAULT", aep_connection_json(aep_emulator.url))
    # The doc's DAG as is, but on this test's unique topic; dag.test() finds it in the dags-folder bundle.
    dag_id = f"kafka_to_aep_scaled_{uuid.uuid4().hex[:6]}"
    source = _doc_example().replace('"aep.events"', repr(topic)).replace('"kafka_to_aep_scaled"', repr(dag_id))
    bundle = Path(airflow_db) / "dags"
    bundle.mkdir(exist_ok=True)
    path = bundle / f"{dag_id}.py"
    path.write_text(source)
    try:
        dag_run = _load(path).test()
    finally:
        path.unlink()

    assert dag_run.state == "success"
    tis = [ti for ti in dag_run.get_task_instances() if ti.task_id == "drain"]
    assert sorted(ti.map_index for ti in tis) == [0, 1, 2] and {ti.state for ti in tis} == {"success"}
    assert {p: sorted(v) for p, v in received(aep_emulator).items()} == {p: list(range(100)) for p in range(3)}
    assert len(aep_emulator.accepted()) == 300
    assert committed(kafka_bootstrap, group, topic, 3) == {0: 100, 1: 100, 2: 100}
