"""
Every argument of :class:`~aep_provider.operators.kafka_to_aep.KafkaToAEPOperator`, declared once.

Each :class:`Argument` carries its default, whether it is templated, a one-line ``help`` (the
operator docstring's ``:param:`` line) and ``doc``, more detail for ``docs/operator.md``. From
this tuple come the signature's defaults (``= default("name")``), ``template_fields``, the
``:param:`` lines of the operator's docstring and the argument table of ``docs/operator.md``
(``python -m scripts.gen_docs``). Defaults the engine's
:class:`~aep_provider.engine.config.DrainConfig` also has are read from it, so the two cannot
drift. ``tests/operators/test_operator_options.py`` checks that the signature names exactly
these arguments, in this order.

Adding an argument: declare it here, add it to ``KafkaToAEPOperator.__init__`` with
``= default("name")`` (where it is stored and checked), then run ``python -m scripts.gen_docs``.
Plain Python: no Airflow import, so ``scripts.gen_docs`` and the docs build stay light.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aep_provider.engine.config import DrainConfig
from aep_provider.engine.replay import DEFAULT_LATENESS_SECONDS


class _Required:
    def __repr__(self) -> str:
        return "required"


#: The default of an argument the operator cannot do without.
REQUIRED: Any = _Required()

#: DrainConfig's defaults (enums as their values): the operator's for the arguments they share.
_DRAIN: Mapping[str, Any] = {
    f.name: f.default.value if isinstance(f.default, enum.Enum) else f.default for f in dataclasses.fields(DrainConfig)
}


@dataclass(frozen=True)
class Argument:
    """
    One argument of the operator.

    :param name: the keyword argument (and attribute) name.
    :param default: its default; :data:`REQUIRED` when it has none.
    :param help: one line for the docstring's ``:param:``; it starts the table's meaning too.
    :param doc: more for the ``docs/operator.md`` table only.
    :param templated: rendered by Jinja (listed in ``template_fields``).
    :param shown_default: how the table shows the default, when ``repr`` would mislead.
    """

    name: str
    default: Any
    help: str
    doc: str = ""
    templated: bool = False
    shown_default: str | None = None

    def param_line(self) -> str:
        """The docstring's ``:param:`` line."""
        return f":param {self.name}: {self.help}" + (" (templated)" if self.templated else "")

    def doc_row(self) -> str:
        """One row of the argument table in ``docs/operator.md``."""
        name = f"`{self.name}`" + (" (templated)" if self.templated else "")
        meaning = (self.help + (f" {self.doc}" if self.doc else "")).replace("|", "\\|")
        return f"| {name} | {self.shown_default or _show(self.default)} | {meaning} |"


def _show(value: Any) -> str:
    if value is REQUIRED:
        return "required"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"`{value:_}`"
    if isinstance(value, str):
        return f'`"{value}"`'  # as a DAG author writes it
    return f"`{value!r}`"


ARGUMENTS: tuple[Argument, ...] = (
    Argument("topics", REQUIRED, "Topic name or list of names.", templated=True),
    Argument(
        "kafka_config_id",
        "kafka_default",
        "Airflow connection of type ``kafka``; its extra is the confluent-kafka config and must hold "
        "``bootstrap.servers`` and ``group.id``.",
        doc="See *The Kafka connection* above.",
    ),
    Argument("aep_conn_id", "aep_default", "The ``adobe_aep`` connection (see docs/connection.md)."),
    Argument("inlet_id", None, "Overrides the connection's ``inlet_id``.", templated=True),
    Argument(
        "max_batch_records",
        _DRAIN["max_batch_records"],
        "Most records per request.",
        doc="With the default, `max_batch_bytes` binds first for messages of 500 bytes and more, so a backlog "
        "goes out in nearly full requests (evened out to the connection's messages/s limit: 909 records of "
        "1 KB, 11 requests per 10,000 messages).",
    ),
    Argument(
        "max_batch_bytes",
        _DRAIN["max_batch_bytes"],
        "Most encoded bytes per request body, at most 1,000,000 (AEP's limit).",
        doc="A single message larger than this but within 1 MB goes alone.",
    ),
    Argument(
        "max_in_flight", _DRAIN["max_in_flight"], "Most concurrent requests (a partition never has two in flight)."
    ),
    Argument(
        "max_records_per_run",
        _DRAIN["max_records_per_run"],
        "Stop cleanly after taking this many records; the rest waits for the next run.",
        doc="It stops a run only when a record past it was waiting: reached exactly on the last record (of the "
        'snapshot, or of a replay\'s interval), the run is complete (`stopped_by: "end"`).',
        templated=True,
    ),
    Argument(
        "max_run_seconds",
        _DRAIN["max_run_seconds"],
        "Stop cleanly after this many seconds; the rest waits for the next run.",
        doc="Keep it below the schedule interval; buffered, unsent records wait for the next run.",
        templated=True,
    ),
    Argument(
        "payload",
        "passthrough",
        '``"passthrough"`` (the value is a full AEP message), ``"xdm"`` (an XDM record, wrapped in the '
        "envelope) or a callable / dotted path ``fn(record) -> dict | None``.",
        doc="See *Payloads* below.",
    ),
    Argument("schema_id", None, 'XDM schema id, required with ``payload="xdm"``.', templated=True),
    Argument("dataset_id", None, 'Dataset id, required with ``payload="xdm"``.', templated=True),
    Argument("flow_id", None, "Dataflow id put in the XDM header (``flowId``).", templated=True),
    Argument("source_name", None, "``header.source.name`` of the XDM envelope.", templated=True),
    Argument("dlq_topic", _DRAIN["dlq_topic"], "Topic receiving rejected records (headers say why).", templated=True),
    Argument(
        "on_reject",
        _DRAIN["on_reject"],
        'Without a DLQ: ``"fail"`` the run at a rejected record, or ``"skip"`` it.',
        doc="Skipped records are counted and logged as WARNING.",
    ),
    Argument(
        "kafka_config_overrides",
        None,
        "confluent-kafka settings merged over the connection's extra.",
        doc="None: the extra as is.",
        templated=True,
    ),
    Argument(
        "kafka_timeout_seconds",
        _DRAIN["kafka_timeout_seconds"],
        "Bound on each broker call (metadata, offsets), on the final commit and on closing the consumer; "
        "a positive number.",
        doc="Also bounds the dead-letter topic check and DLQ delivery. A broker silent for this plus "
        "`stop_grace_seconds` mid-run fails the run.",
    ),
    Argument(
        "assignment_timeout_seconds",
        _DRAIN["assignment_timeout_seconds"],
        "Bound on the wait for the group's first partition assignment.",
    ),
    Argument(
        "stop_grace_seconds",
        _DRAIN["stop_grace_seconds"],
        "How long a stopping run waits for requests in flight (and DLQ writes) before abandoning them.",
    ),
    Argument(
        "progress_interval_seconds",
        _DRAIN["progress_interval_seconds"],
        "How often progress per partition is logged.",
    ),
    Argument(
        "mode",
        "auto",
        '``"auto"`` (backfill runs replay their data interval, and so do manual runs whose data interval was '
        'set by hand in the Trigger form; other runs drain), ``"drain"`` (every run drains) or ``"replay"`` '
        "(every run replays its data interval).",
        doc="See [Backfills and replays](backfills.md).",
        templated=True,
    ),
    Argument(
        "replay_start",
        None,
        "Start of an interval to replay (ISO 8601, or epoch milliseconds as a number or a string of digits); "
        "with ``replay_end`` it makes the run a replay of that interval.",
        doc="Given here it wins; unset, the run's params, then its conf `replay_start` (see [Backfills and "
        "replays](backfills.md)). A date-time without a time zone is read in Airflow's `[core] default_timezone` "
        "(UTC unless configured), and the log says so.",
        templated=True,
    ),
    Argument("replay_end", None, "End of the interval to replay (exclusive), as ``replay_start``.", templated=True),
    Argument(
        "replay_scope",
        None,
        'Replays: ``"handed_over"`` re-sends only what the live drain already committed and counts the rest; '
        '``"all"`` sends every record of the interval.',
        doc="The same rule as `replay_start`: given here it wins; unset, the run's params, then its conf "
        '`replay_scope`, else `"handed_over"`.',
        templated=True,
    ),
    Argument(
        "replay_lateness_seconds",
        DEFAULT_LATENESS_SECONDS,
        "Replays: how far past the interval's end, by record timestamp, the scan looks for records stamped "
        "inside it (producer timestamps are not monotonic).",
    ),
    Argument(
        "validate_xdm",
        True,
        "Check each record against its XDM schema before sending; an invalid one is rejected like any other "
        '(DLQ or ``on_reject``). Applies to ``payload="xdm"`` (the dataset\'s schema) and to passthrough '
        "messages with ``header.schemaRef``; ``False`` sends as is.",
        doc="The schema is read from the Schema Registry once per run (`platform_url`). Costs about +12 % CPU per "
        "run with `xdm`, +38 % with `passthrough` (1 KB records); AEP still checks what a local validator cannot. "
        "See [Validation and AEP's failures](validation.md).",
    ),
    Argument(
        "fail_on_aep_failures",
        False,
        "Fail the task when AEP reports failed records this task had not reported before (``failed_in_aep``).",
        doc="By default they are reported: run summary, metrics, a WARNING section of the log. The check needs "
        "`dataset_id`.",
    ),
)

BY_NAME: Mapping[str, Argument] = {a.name: a for a in ARGUMENTS}


def default(name: str) -> Any:
    """The declared default of argument ``name`` (for the operator's signature)."""
    return BY_NAME[name].default


def template_fields() -> tuple[str, ...]:
    """The templated arguments, in declaration order."""
    return tuple(a.name for a in ARGUMENTS if a.templated)


def docstring(intro: str) -> str:
    """The operator's docstring: ``intro`` followed by one ``:param:`` line per argument."""
    return intro.rstrip() + "\n\n" + "\n".join(f"    {a.param_line()}" for a in ARGUMENTS) + "\n"


def doc_table() -> str:
    """The argument table of ``docs/operator.md``."""
    rows = ["| argument | default | meaning |", "|---|---|---|"]
    return "\n".join(rows + [a.doc_row() for a in ARGUMENTS])
