"""Metrics, lineage, asset events and the AEP link of KafkaToAEPOperator runs (real broker + emulator)."""

from __future__ import annotations

import importlib.util
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from airflow.sdk import Asset

from aep_provider.assets.aep import asset_uri, convert_asset_to_openlineage, create_asset, sanitize_uri
from aep_provider.emulator import DEFAULT_IMS_ORG_ID, DEFAULT_INLET_ID
from aep_provider.get_provider_info import get_provider_info
from aep_provider.links.aep import AEPDatasetLink, aep_ui_url
from aep_provider.operators import lineage
from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator
from aep_provider.operators.metrics import topic_tag
from tests.engine.support import produce, produce_values

ORG = DEFAULT_IMS_ORG_ID.split("@")[0]


# -- naming (unit) -----------------------------------------------------------------------


def test_asset_uri_form_and_normalisation():
    assert (
        asset_uri(ims_org_id=DEFAULT_IMS_ORG_ID, sandbox="Prod", dataset_id="ds1") == f"aep://{ORG}/prod/datasets/ds1"
    )
    assert asset_uri(ims_org_id=DEFAULT_IMS_ORG_ID, inlet_id="in/1") == f"aep://{ORG}/prod/inlets/in%2F1"
    # Through Airflow's own URI handling (the provider registers the scheme).
    assert Asset(f"aep://{DEFAULT_IMS_ORG_ID}/PROD/datasets/ds1/").uri == f"aep://{ORG}/prod/datasets/ds1"
    for bad in ("aep:///prod/datasets/x", "aep://o/prod/tables/x", "aep://o/prod/datasets"):
        with pytest.raises(ValueError, match="aep://"):
            sanitize_uri(urlsplit(bad))
    asset = create_asset(ims_org_id=DEFAULT_IMS_ORG_ID, sandbox="dev", dataset_id="ds9")
    ol = convert_asset_to_openlineage(asset, None)
    assert (ol.namespace, ol.name) == (f"aep://{ORG}/dev", "datasets/ds9")


def test_kafka_namespace_and_topic_tag():
    assert lineage.kafka_namespace("SASL_SSL://b1:9093, b2:9093") == "kafka://b1:9093"
    assert topic_tag(["b", "a", "b"]) == "a+b"


def test_ui_link_needs_org_and_sandbox():
    assert aep_ui_url(ims_org_id=None, sandbox="prod") == ""
    assert aep_ui_url(ims_org_id="X@AdobeOrg", sandbox="Dev", dataset_id="d1") == (
        "https://experience.adobe.com/#/@X@AdobeOrg/sname:dev/platform/dataset/browse/d1"
    )
    assert aep_ui_url(ims_org_id="X@AdobeOrg", sandbox="prod").endswith("/sname:prod/platform/source/dataflows")


def test_provider_info_registers_links_assets_and_renderers():
    info = get_provider_info()
    assert info["extra-links"] == ["aep_provider.links.aep.AEPDatasetLink"]
    assert info["asset-uris"][0]["schemes"] == ["aep"]
    assert KafkaToAEPOperator.template_fields_renderers["kafka_config_overrides"] == "json"
    assert any(isinstance(link, AEPDatasetLink) for link in KafkaToAEPOperator.operator_extra_links)


def test_facets_without_a_run_name_inputs_only():
    pytest.importorskip("airflow.providers.openlineage")
    op = KafkaToAEPOperator(task_id="t", topics=["a", "b"])
    facets = op.get_openlineage_facets_on_complete(None)
    assert [d.name for d in facets.inputs] == ["a", "b"] and facets.outputs == []


# -- a real run: OpenLineage, hook lineage, link ------------------------------------------


@pytest.mark.integration
def test_run_produces_facets_hook_lineage_and_link(
    kafka_bootstrap, make_topic, kafka_conn_id, aep_conn_id, aep_emulator, monkeypatch
):
    pytest.importorskip("airflow.providers.openlineage")
    from airflow.sdk import lineage as sdk_lineage

    collector = sdk_lineage.HookLineageCollector()
    monkeypatch.setattr(sdk_lineage, "get_hook_lineage_collector", lambda: collector)
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, 2, 10)
    op = KafkaToAEPOperator(
        task_id="drain",
        topics=topic,
        kafka_config_id=kafka_conn_id,
        aep_conn_id=aep_conn_id,
        dataset_id="ds-events",
        validate_xdm=False,  # "ds-events" is a name for lineage only: the emulator's Catalog has no such dataset
    )
    summary = op.execute(context={})
    assert summary["delivered"] == 20

    facets = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in facets.inputs] == [(f"kafka://{kafka_bootstrap}", topic)]
    [out] = facets.outputs
    assert (out.namespace, out.name) == (f"aep://{ORG}/prod", "datasets/ds-events")
    assert out.outputFacets["outputStatistics"].rowCount == 20
    run = facets.run_facets["aepDrain"]
    assert (run.delivered, run.rejected, run.lag, run.stoppedBy) == (20, 0, 0, "end")

    collected = collector.collected_assets
    assert [a.asset.uri for a in collected.inputs] == [f"kafka://{kafka_bootstrap}/{topic}"]
    assert [a.asset.uri for a in collected.outputs] == [f"aep://{ORG}/prod/datasets/ds-events"]

    link = AEPDatasetLink().get_link(op, ti_key=None)
    assert link == f"https://experience.adobe.com/#/@{DEFAULT_IMS_ORG_ID}/sname:prod/platform/dataset/browse/ds-events"


# -- under dag.test(): metrics to StatsD, asset event, link XCom ---------------------------


@pytest.fixture
def statsd_listener(monkeypatch) -> Iterator[list[str]]:
    """Airflow's Stats pointed at a UDP listener on 127.0.0.1 (InfluxDB-style tags); yields the lines received."""
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    lines: list[str] = []
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                data = sock.recv(65535)
            except OSError:
                continue
            lines.extend(data.decode().splitlines())

    for key, value in {
        "STATSD_ON": "True",
        "STATSD_HOST": "127.0.0.1",
        "STATSD_PORT": str(sock.getsockname()[1]),
        "STATSD_PREFIX": "airflow",
        "STATSD_INFLUXDB_ENABLED": "True",
    }.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{key}", value)
    stats.initialize(factory=get_stats_factory(), export_legacy_names=False)
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        yield lines
    finally:
        stop.set()
        thread.join(2)
        sock.close()
        stats.initialize(factory=NoStatsLogger, export_legacy_names=False)


def _metric(lines: list[str], name: str, **tags: str) -> list[str]:
    """Values of ``airflow.<name>`` lines whose tags include ``tags`` (InfluxDB line format: name,k=v:value|type)."""
    values = []
    for line in lines:
        head, _, value = line.partition(":")
        stat, *pairs = head.split(",")
        if stat == f"airflow.{name}" and all(f"{k}={v}" in pairs for k, v in tags.items()):
            values.append(value)
    return values


DAG_TEMPLATE = """
from datetime import datetime
from airflow.sdk import DAG, Asset
from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator

with DAG({dag_id!r}, schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
    KafkaToAEPOperator(
        task_id="drain", topics={topic!r}, kafka_config_id={kafka!r}, aep_conn_id={aep!r},
        dlq_topic={dlq!r}, dataset_id="ds-events", outlets=[Asset({uri!r})], validate_xdm=False,
    )
"""


@pytest.mark.integration
@pytest.mark.e2e
def test_dag_test_run_emits_metrics_asset_event_and_link(
    airflow_db, kafka_bootstrap, make_topic, kafka_conn_id, aep_conn_id, aep_emulator, statsd_listener
):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    topic = make_topic(partitions=2, prefix="events")
    dlq = make_topic(prefix="events.dlq")
    produce(kafka_bootstrap, topic, 2, 5)
    produce_values(kafka_bootstrap, topic, [b"not JSON"], partition=0)  # rejected, dead-lettered
    uri = asset_uri(ims_org_id=DEFAULT_IMS_ORG_ID, dataset_id="ds-events")
    dag_id = f"monitoring_{uuid.uuid4().hex[:8]}"
    bundle = Path(airflow_db) / "dags"
    bundle.mkdir(exist_ok=True)
    path = bundle / f"{dag_id}.py"
    path.write_text(
        DAG_TEMPLATE.format(dag_id=dag_id, topic=topic, kafka=kafka_conn_id, aep=aep_conn_id, dlq=dlq, uri=uri)
    )
    spec = importlib.util.spec_from_file_location(dag_id, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    dag_run = module.dag.test()

    assert dag_run.state == "success"
    ti = dag_run.get_task_instance("drain")
    tags = {"dag_id": dag_id, "task_id": "drain", "topic": topic}
    assert _metric(statsd_listener, "aep_provider.records.delivered", **tags) == ["10|c"]
    assert _metric(statsd_listener, "aep_provider.records.dead_lettered", **tags) == ["1|c"]
    assert _metric(statsd_listener, "aep_provider.records.rejected", **tags) == ["1|c"]
    assert _metric(statsd_listener, "aep_provider.records.skipped", **tags) == ["0|c"]
    assert _metric(statsd_listener, "aep_provider.records.read", **tags) == ["11|c"]
    assert _metric(statsd_listener, "aep_provider.requests", **tags)[0] != "0|c"
    assert _metric(statsd_listener, "aep_provider.lag", **tags) == ["0|g"]
    assert _metric(statsd_listener, "aep_provider.runs", **tags, stopped_by="end") == ["1|c"]
    [duration] = _metric(statsd_listener, "aep_provider.run_duration", **tags)
    assert duration.endswith("|ms")
    latency = {
        stat: _metric(statsd_listener, f"aep_provider.request_latency.{stat}", **tags)
        for stat in ("p50", "p95", "max", "mean")
    }
    assert all(len(values) == 1 and values[0].endswith("|ms") for values in latency.values()), latency
    ms = {stat: float(values[0].split("|")[0]) for stat, values in latency.items()}
    assert 0 < ms["p50"] <= ms["p95"] <= ms["max"] and ms["mean"] <= ms["max"]
    figures = ti.xcom_pull(task_ids="drain")["request_seconds"]
    assert figures["count"] == int(_metric(statsd_listener, "aep_provider.requests", **tags)[0].split("|")[0])
    assert not any("partition" in line for line in statsd_listener if "aep_provider" in line)

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_dag_id == dag_id)).all()
        extras = [event.extra for event in events]
    assert len(extras) == 1
    extra = extras[0]
    assert (extra["delivered"], extra["dead_lettered"], extra["lag"]) == (10, 1, 0)
    assert extra["offsets"][f"{topic}[0]"] == {"start": 0, "end": 6, "committed": 6}
    assert extra["topics"] == [topic] and extra["inlet_id"] == DEFAULT_INLET_ID

    link = ti.xcom_pull(task_ids="drain", key=AEPDatasetLink().xcom_key)
    assert link.endswith("/sname:prod/platform/dataset/browse/ds-events")


# -- provider exception types ------------------------------------------------------------


def test_task_errors_are_provider_types_split_by_retryability():
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from aep_provider import exceptions as exc
    from aep_provider.aep.errors import AEPAuthError, AEPUnavailableError
    from aep_provider.engine.errors import DrainError, KafkaSetupError, KafkaUnavailableError, RecordRejectedError

    cases = [
        (AEPUnavailableError("down"), exc.AEPUnavailableTaskError),
        (KafkaUnavailableError("slow"), exc.KafkaUnavailableTaskError),
        (DrainError("dlq write failed"), exc.AEPProviderError),
        (RecordRejectedError("bad", topic="t", partition=0, offset=1), exc.RecordRejectedTaskError),
        (KafkaSetupError("no topic"), exc.AEPConfigurationError),
        (AEPAuthError("401"), exc.AEPConfigurationError),
        (ValueError("bad limit"), exc.AEPConfigurationError),
    ]
    for err, kind in cases:
        mapped = exc.task_error(err)
        assert type(mapped) is kind and str(mapped) == str(err)
        retryable = getattr(err, "retryable", isinstance(err, AEPUnavailableError))
        assert isinstance(mapped, AirflowFailException) is (not retryable), err
        assert isinstance(mapped, AirflowException)


def test_operator_raises_provider_types(aep_conn_id):
    from aep_provider.exceptions import AEPConfigurationError

    with pytest.raises(AEPConfigurationError, match="no_such_conn"):
        KafkaToAEPOperator(task_id="t", topics="x", kafka_config_id="no_such_conn", aep_conn_id=aep_conn_id).execute({})


def test_replay_metrics_carry_mode_and_no_lag_gauge(monkeypatch):
    """A replay's figures are tagged mode=replay and never overwrite the live drain's lag gauge."""
    from aep_provider.operators import metrics

    sent: list[tuple[str, str, dict]] = []
    monkeypatch.setattr(
        metrics.Stats, "incr", lambda name, count=1, tags=None, **kw: sent.append(("incr", name, tags or {}))
    )
    monkeypatch.setattr(
        metrics.Stats, "gauge", lambda name, value, tags=None, **kw: sent.append(("gauge", name, tags or {}))
    )
    monkeypatch.setattr(
        metrics.Stats, "timing", lambda name, dt, tags=None, **kw: sent.append(("timing", name, tags or {}))
    )
    summary = {
        "mode": "replay",
        "interval": {"start": "2026-11-28T00:00:00Z", "end": "2026-11-29T00:00:00Z"},
        "delivered": 3,
        "stopped_by": "end",
        "seconds": 1.0,
        "partitions": {"t[0]": {"topic": "t", "partition": 0, "start": 0, "end": 5, "records": 3}},
    }
    metrics.emit_run_metrics(summary, dag_id="d", task_id="x", topics=["t"])
    assert not [name for kind, name, _ in sent if kind == "gauge"]
    assert all(tags.get("mode") == "replay" for kind, _, tags in sent if kind != "gauge")
    from aep_provider.operators.lineage import asset_event_extra

    extra = asset_event_extra(summary, ["t"], None)
    assert extra["mode"] == "replay" and extra["interval"]["start"] == "2026-11-28T00:00:00Z" and "lag" not in extra
