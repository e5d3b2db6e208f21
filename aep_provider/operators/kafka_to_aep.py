"""KafkaToAEPOperator: each run drains Kafka topics to the offsets snapshotted at its start, into AEP."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret

from aep_provider.aep.errors import AEPError
from aep_provider.engine.config import (
    DrainConfig,
    consumer_config,
    validate_guardrail_share,
    validate_limits,
    validate_on_reject,
    validate_timeouts,
)
from aep_provider.engine.drain import DrainEngine
from aep_provider.engine.errors import DrainError, FailedInAEPError
from aep_provider.engine.payload import make_shaper
from aep_provider.engine.redrive import redrive_engine, redrive_group
from aep_provider.engine.replay import ReplayPlanner, parse_scope
from aep_provider.engine.summary import RunSummary
from aep_provider.exceptions import AEPConfigurationError, task_error
from aep_provider.hooks.aep import AEPStreamingHook
from aep_provider.kafka.connection import kafka_connection_config
from aep_provider.links.aep import AEPDatasetLink
from aep_provider.operators.aep_checks import report_aep_failures, xdm_validators
from aep_provider.operators.arguments import default, docstring, template_fields
from aep_provider.operators.run_mode import redrive_requested, replay_window, validate_mode

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Kafka client settings whose values are secrets (SASL/SSL passwords, OAuth client secrets, keys).
_SECRET_KAFKA_KEY_PARTS = ("password", "secret", "ssl.key.pem", "ssl.keystore", "token", "sasl.jaas")

PAYLOADS = ("passthrough", "xdm")


class KafkaToAEPOperator(BaseOperator):
    __doc__ = docstring(
        """
    Drain Kafka topics into an AEP streaming inlet, committing only what AEP acknowledged.

    Each run reads every partition assigned to it from the consumer group's committed offset up
    to the end offset snapshotted when the run started, sends the records in bounded batches and
    commits the contiguous acknowledged (or dead-lettered) prefix as soon as it advances
    (asynchronously, one commit outstanding at most). The run then ends; records produced
    meanwhile wait for the next run. Returns the run summary (XCom).

    Delivery is at least once. After a crash (SIGKILL, lost worker) the next run sends again at
    most ``max_in_flight × max_batch_records`` records: the requests in flight plus the batches
    AEP acknowledged whose commit the broker had not yet confirmed, which count against
    ``max_in_flight`` (plus, with ``dlq_topic``, records behind a dead-letter write not yet
    acknowledged). ``execution_timeout``, SIGTERM (a worker's shutdown, a pod eviction) and "mark
    failed" stop the drain cleanly: no new requests, in-flight ones settled within
    ``stop_grace_seconds``, acknowledged offsets committed (within ``kafka_timeout_seconds``), the
    summary pushed as XCom ``summary``; then the try fails, retryably (a stopped run is not a
    finished one: ``retries`` apply and the next try sends the rest).

    A ``backfill`` run (and any run given ``replay_start``/``replay_end``) is a *replay* instead:
    it maps its data interval to offsets with the broker's timestamp index, sends the records
    stamped inside the interval again, never joins the consumer group and commits nothing.

    A run whose conf sets ``redrive`` (true, or this task's id) — or every run with
    ``mode="redrive"`` — is a *redrive*: it sends the records of ``dlq_topic`` again, each shaped
    as the record it was dead-lettered from (same message, same ``_id``), and commits the group
    ``<group.id>.dlq-redrive``; records rejected again go back to ``dlq_topic`` for the next redrive.

    Arguments are declared once, in :mod:`aep_provider.operators.arguments`.
    """
    )

    template_fields: Sequence[str] = template_fields()
    template_fields_renderers = {"kafka_config_overrides": "json"}
    operator_extra_links = (AEPDatasetLink(),)
    ui_color = "#e8f4ff"
    # Filled in after a run (see _after_run) for the extra link and OpenLineage.
    aep_target: Any = None
    _run_summary: dict[str, Any] | None = None
    _run_bootstrap: str = ""

    def __init__(
        self,
        *,
        topics: str | Sequence[str],
        kafka_config_id: str = default("kafka_config_id"),
        aep_conn_id: str = default("aep_conn_id"),
        inlet_id: str | None = default("inlet_id"),
        max_batch_records: int = default("max_batch_records"),
        max_batch_bytes: int = default("max_batch_bytes"),
        max_in_flight: int = default("max_in_flight"),
        guardrail_share: float = default("guardrail_share"),
        max_records_per_run: int | str | None = default("max_records_per_run"),
        max_run_seconds: float | str | None = default("max_run_seconds"),
        payload: str | Callable[..., dict[str, Any] | None] = default("payload"),
        schema_id: str | None = default("schema_id"),
        dataset_id: str | None = default("dataset_id"),
        flow_id: str | None = default("flow_id"),
        source_name: str | None = default("source_name"),
        dlq_topic: str | None = default("dlq_topic"),
        on_reject: str = default("on_reject"),
        kafka_config_overrides: dict[str, Any] | None = default("kafka_config_overrides"),
        kafka_timeout_seconds: float = default("kafka_timeout_seconds"),
        assignment_timeout_seconds: float = default("assignment_timeout_seconds"),
        stop_grace_seconds: float = default("stop_grace_seconds"),
        progress_interval_seconds: float = default("progress_interval_seconds"),
        mode: str = default("mode"),
        replay_start: str | None = default("replay_start"),
        replay_end: str | None = default("replay_end"),
        replay_scope: str | None = default("replay_scope"),
        replay_lateness_seconds: float = default("replay_lateness_seconds"),
        validate_xdm: bool = default("validate_xdm"),
        fail_on_aep_failures: bool = default("fail_on_aep_failures"),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not topics:
            raise ValueError("KafkaToAEPOperator needs topics=: a topic name or a list of names")
        # Templated limits are checked once rendered (in execute); literal ones right here.
        validate_limits(
            max_batch_records=max_batch_records,
            max_batch_bytes=max_batch_bytes,
            max_in_flight=max_in_flight,
            max_records_per_run=None if isinstance(max_records_per_run, str) else max_records_per_run,
            max_run_seconds=None if isinstance(max_run_seconds, str) else max_run_seconds,
        )
        validate_timeouts(
            kafka_timeout_seconds=kafka_timeout_seconds,
            assignment_timeout_seconds=assignment_timeout_seconds,
            stop_grace_seconds=stop_grace_seconds,
            progress_interval_seconds=progress_interval_seconds,
        )
        validate_guardrail_share(guardrail_share)
        self.on_reject = validate_on_reject(on_reject).value
        if not callable(payload) and (not isinstance(payload, str) or (payload not in PAYLOADS and "." not in payload)):
            raise ValueError(
                f"payload must be 'passthrough', 'xdm', a callable or a dotted path 'module.function', got {payload!r}"
            )
        if payload == "xdm" and not (schema_id and dataset_id):
            raise ValueError("payload='xdm' needs schema_id and dataset_id (the envelope's schemaRef and datasetId)")
        if "{{" not in mode:
            validate_mode(mode)
        if replay_scope is not None and "{{" not in replay_scope:
            parse_scope(replay_scope)
        if replay_lateness_seconds is None or replay_lateness_seconds < 0:
            raise ValueError(f"replay_lateness_seconds must be 0 or more, got {replay_lateness_seconds!r}")
        self.mode = mode
        self.replay_start = replay_start
        self.replay_end = replay_end
        self.replay_scope = replay_scope
        self.replay_lateness_seconds = replay_lateness_seconds
        self.validate_xdm = bool(validate_xdm)
        self.fail_on_aep_failures = bool(fail_on_aep_failures)
        self.topics = topics
        self.kafka_config_id = kafka_config_id
        self.aep_conn_id = aep_conn_id
        self.inlet_id = inlet_id
        self.max_batch_records = max_batch_records
        self.max_batch_bytes = max_batch_bytes
        self.max_in_flight = max_in_flight
        self.guardrail_share = guardrail_share
        self.max_records_per_run = max_records_per_run
        self.max_run_seconds = max_run_seconds
        self.payload = payload
        self.schema_id = schema_id
        self.dataset_id = dataset_id
        self.flow_id = flow_id
        self.source_name = source_name
        self.dlq_topic = dlq_topic
        self.kafka_config_overrides = kafka_config_overrides or {}
        self.kafka_timeout_seconds = kafka_timeout_seconds
        self.assignment_timeout_seconds = assignment_timeout_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self.progress_interval_seconds = progress_interval_seconds
        self._engine: DrainEngine | None = None

    def drain_config(self) -> DrainConfig:
        """The engine's limits and policies from the (rendered) arguments."""
        return DrainConfig(
            max_batch_records=self.max_batch_records,
            max_batch_bytes=self.max_batch_bytes,
            max_in_flight=self.max_in_flight,
            guardrail_share=self.guardrail_share,
            max_records_per_run=_optional_number(self.max_records_per_run, int, "max_records_per_run"),
            max_run_seconds=_optional_number(self.max_run_seconds, float, "max_run_seconds"),
            dlq_topic=self.dlq_topic or None,
            on_reject=self.on_reject,
            kafka_timeout_seconds=self.kafka_timeout_seconds,
            assignment_timeout_seconds=self.assignment_timeout_seconds,
            stop_grace_seconds=self.stop_grace_seconds,
            progress_interval_seconds=self.progress_interval_seconds,
        )

    def kafka_consumer_config(self) -> dict[str, Any]:
        """The consumer settings: connection extra, then overrides, then the engine's forced settings."""
        extra = kafka_connection_config(self.kafka_config_id)
        for settings in (extra, self.kafka_config_overrides):
            for key, value in settings.items():
                if any(part in key for part in _SECRET_KAFKA_KEY_PARTS) and value:
                    mask_secret(str(value))
        return consumer_config(
            extra, self.kafka_config_overrides, source=f"Airflow connection {self.kafka_config_id!r}"
        )

    def execute(self, context: Context) -> dict[str, Any]:
        """
        Run one drain and return its summary.

        Failures that a retry cannot fix (settings, missing topic, credentials, a rejected record
        under ``on_reject="fail"``) raise ``AirflowFailException`` so the task fails at once;
        outages (broker or AEP unavailable past their deadlines) raise ``AirflowException`` so
        the task's ``retries`` apply. Either way the message says what is wrong and where.
        """
        try:
            return self._drain(context)
        except AirflowNotFoundException as err:
            raise AEPConfigurationError(
                f"{err}: create it (Admin → Connections, or an AIRFLOW_CONN_<ID> variable); this task uses "
                f"kafka_config_id={self.kafka_config_id!r} and aep_conn_id={self.aep_conn_id!r}"
            ) from None
        except (DrainError, AEPError, ValueError) as err:
            self._push_failed_summary(context)
            # The engine's messages are complete; its internal traceback would only bury them.
            # Provider types (aep_provider.exceptions): retryable ones subclass AirflowException,
            # the rest AirflowFailException, so retry policies can match them by class.
            raise task_error(err) from None
        except BaseException:
            # execution_timeout (AirflowTaskTimeout), a termination, or a bug: the drain was stopped
            # cleanly by _run_engine; keep what it did visible, then let Airflow handle the error.
            self._push_failed_summary(context)
            raise
        finally:
            self._after_run(context)

    def _after_run(self, context: Context) -> None:
        """Metrics, hook lineage, asset events and the AEP link of the run that just ended; never fails the task."""
        engine = self._engine
        if engine is None:  # failed before draining (no connection, bad settings): nothing to report
            return
        from aep_provider.operators.observability import report_run

        try:
            self._run_summary = engine.summary.to_dict()
            self._run_bootstrap = str(engine.consumer_conf.get("bootstrap.servers", ""))
            self.aep_target = report_run(
                self,
                context,
                self._run_summary,
                topics=engine.topics,
                bootstrap_servers=self._run_bootstrap,
                aep_conn_id=self.aep_conn_id,
                inlet_id=self.inlet_id,
                dataset_id=self.dataset_id,
            )
        except Exception:  # monitoring must never turn a delivered run into a failed task
            self.log.warning("Could not report this run's metrics/lineage", exc_info=True)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        OpenLineage facets of the run (called by the OpenLineage provider, when installed).

        Inputs ``kafka://{host}:{port}`` / topic, output ``aep://{org}/{sandbox}`` /
        ``datasets/{dataset_id}`` (or ``inlets/{inlet_id}``), run facet ``aepDrain`` with the counts.
        """
        from aep_provider.operators.lineage import openlineage_facets

        topics = [self.topics] if isinstance(self.topics, str) else list(self.topics)
        return openlineage_facets(self._run_summary, self._run_bootstrap, topics, self.aep_target)

    def _push_failed_summary(self, context: Context) -> None:
        """A failed run has no return value: keep what it did (moved, rejected and why, lag) as XCom ``summary``."""
        ti = context.get("ti") if context else None
        if ti is None or self._engine is None:
            return
        try:
            ti.xcom_push(key="summary", value=self._engine.summary.to_dict())
        except Exception as push_err:  # the run's own error is what the user must see
            self.log.warning("Could not push the failed run's summary to XCom: %s", push_err)

    def _drain(self, context: Context | None) -> dict[str, Any]:
        topics = [self.topics] if isinstance(self.topics, str) else list(self.topics)
        config = self.drain_config()
        redrive = redrive_requested(
            context or {},
            mode=self.mode,
            task_id=self.task_id,
            replay_start=self.replay_start,
            replay_end=self.replay_end,
        )
        if redrive and not config.dlq_topic:
            raise ValueError(
                f"task {self.task_id!r} is asked to redrive its dead-letter topic, but it has no dlq_topic: "
                "nothing to redrive"
            )
        window = (
            None
            if redrive
            else replay_window(
                context or {},
                mode=self.mode,
                start=self.replay_start,
                end=self.replay_end,
                scope=self.replay_scope,
                lateness_seconds=self.replay_lateness_seconds,
                naive_timezone=_airflow_timezone(),
            )
        )
        consumer_conf = self.kafka_consumer_config()
        planner = None
        if window is not None:
            self.log.info(
                "Replaying %s (%s, scope %r): the consumer group is neither joined nor committed to",
                window.describe(),
                window.source,
                window.scope.value,
            )
            planner = ReplayPlanner(window, consumer_conf, timeout=config.kafka_timeout_seconds)
        hook = AEPStreamingHook(aep_conn_id=self.aep_conn_id, inlet_id=self.inlet_id or None)
        try:
            schemas = xdm_validators(
                hook,
                payload=self.payload,
                dataset_id=self.dataset_id,
                schema_id=self.schema_id,
                validate=self.validate_xdm,
            )
            shaper = make_shaper(
                self.payload,
                schema_id=self.schema_id,
                dataset_id=self.dataset_id,
                ims_org_id=hook.ims_org_id if self.payload == "xdm" else None,
                flow_id=self.flow_id,
                source_name=self.source_name,
                schemas=schemas,
            )
            run: dict[str, Any] = {
                "consumer_conf": consumer_conf,
                "sender": hook.get_client(),
                "config": config,
                "shaper": shaper,
            }
            if redrive:
                self.log.info(
                    "Redriving dead-letter topic %r with consumer group %r: its records go to AEP again as the "
                    "records they were dead-lettered from (same _id); those rejected again go back to it",
                    config.dlq_topic,
                    redrive_group(str(consumer_conf["group.id"])),
                )
                self._engine = redrive_engine(source_topics=topics, **run)
            else:
                self._engine = DrainEngine(topics=topics, planner=planner, **run)
            summary = self._run_engine(self._engine)
            summary.xdm_validation = {"enabled": schemas is not None, "schemas": schemas.schemas() if schemas else []}
            report = report_aep_failures(
                hook, summary, dataset_id=self.dataset_id, context=context, dag_id=self.dag_id, task_id=self.task_id
            )
            if self.fail_on_aep_failures and report.failed_in_aep:
                raise FailedInAEPError(
                    f"AEP failed {report.failed_in_aep} record(s) it had accepted (failed batches of dataset "
                    f"{self.dataset_id!r}, not reported before; by reason: {report.failed_in_aep_reasons()}). "
                    "They were delivered and committed: fix the producer or the schema and re-send them "
                    "(a replay), or set fail_on_aep_failures=False to only report them."
                )
            return summary.to_dict()
        finally:
            hook.close()

    def _run_engine(self, engine: DrainEngine) -> RunSummary:
        """
        Run the drain in a worker thread and wait for it here.

        Airflow raises ``AirflowTaskTimeout`` (execution_timeout) in this, the main thread, at any
        point, and calls ``on_kill`` only afterwards. Were the drain running here, it would be cut
        mid-operation (no settle, no commit, no summary); instead the exception lands in the wait
        below, which stops the drain and waits for its clean, bounded ending before re-raising.
        """
        outcome: dict[str, Any] = {}
        # Waited on through an Event, not Thread.join(): in CPython < 3.13 an exception raised by a
        # signal handler (AirflowTaskTimeout) inside join() marks the thread as stopped while it
        # still runs, so every later join() would return at once and the summary would be taken
        # before the drain settled and committed its last batch.
        done = threading.Event()

        def drain() -> None:
            try:
                outcome["summary"] = engine.run()
            except BaseException as err:  # handed to the main thread as is
                outcome["error"] = err
            finally:
                done.set()

        worker = threading.Thread(target=drain, name="aep-drain", daemon=True)
        worker.start()
        try:
            while not done.wait(0.5):
                pass
        except BaseException as interrupt:
            engine.stop()
            bound = self._shutdown_bound()
            self.log.warning(
                "%s: stopping the drain (no new requests; in-flight ones settled, acknowledged offsets committed; "
                "at most %.0fs)",
                type(interrupt).__name__,
                bound,
            )
            if not done.wait(bound):
                self.log.warning(
                    "The drain did not end within %.0fs; leaving it (uncommitted records are sent again)", bound
                )
            engine.summary.stopped_by = f"interrupted ({type(interrupt).__name__})"
            raise
        if "error" in outcome:
            raise outcome["error"]
        return outcome["summary"]

    def _shutdown_bound(self) -> float:
        """Longest a stopped drain takes to end: settle + DLQ flush, final commit, topic ends, close."""
        return 2 * float(self.stop_grace_seconds) + 2 * float(self.kafka_timeout_seconds) + 10.0

    def on_kill(self) -> None:
        """Stop the drain: no new requests, in-flight ones settled (bounded), acknowledged offsets committed."""
        if self._engine is not None:
            self._engine.stop()


def _airflow_timezone() -> str:
    """Airflow's ``[core] default_timezone`` (how Airflow itself reads a date-time without a zone)."""
    from airflow.sdk.configuration import conf

    name = conf.get("core", "default_timezone", fallback="utc")
    return pendulum.local_timezone().name if name == "system" else name


def _optional_number(value: Any, kind: type, name: str) -> Any:
    """A rendered template arrives as a string: turn it back into ``kind`` (empty/None = no limit)."""
    if value is None or value == "" or value == "None":
        return None
    if isinstance(value, str):
        try:
            return kind(float(value)) if kind is int and float(value).is_integer() else kind(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    return value
