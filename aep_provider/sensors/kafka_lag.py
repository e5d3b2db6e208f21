"""KafkaLagSensor: wait until a consumer group has enough records waiting on its topics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowSensorTimeout

from aep_provider.exceptions import AEPConfigurationError, KafkaLagReadError
from aep_provider.kafka.lag import GroupLag, LagReadError, read_group_lag
from aep_provider.triggers.kafka_lag import KafkaLagTrigger, lag_consumer_config

if TYPE_CHECKING:
    from airflow.sdk import Context


class KafkaLagSensor(BaseSensorOperator):
    """
    Wait until a consumer group's lag on some topics reaches ``min_lag`` records.

    The lag is the sum over the topics' partitions of *end offset − committed offset* (a
    partition without a committed offset counts from the log start, or from the end under
    ``auto.offset.reset=latest``; the end is the last stable offset under the default
    ``isolation.level=read_committed``). Put it before a
    :class:`~aep_provider.operators.kafka_to_aep.KafkaToAEPOperator` with ``soft_fail=True`` and a
    ``timeout`` to skip runs when nothing is waiting.

    Reads offsets only: it never joins the group, never polls records, never commits, so the
    drain that follows finds the group exactly as it was. Returns (XCom) the lag it saw:
    ``{"group_id", "lag", "topics": {topic: lag}, "partitions": {...}}``.

    :param topics: topic name or list of names. (templated)
    :param kafka_config_id: the ``kafka`` connection (same one as the drain's).
    :param group_id: the consumer group, default the connection's ``group.id``. (templated)
    :param min_lag: records waiting that satisfy the sensor, at least 1. (templated)
    :param kafka_config_overrides: confluent-kafka settings merged over the connection's extra,
        e.g. ``{"auto.offset.reset": "latest"}`` when the drain uses it. (templated)
    :param request_timeout: bound on each broker request, in seconds.
    :param deferrable: wait in the triggerer instead of a worker slot (default
        ``[operators] default_deferrable``); ``poke_interval`` is the time between checks either way.
    """

    template_fields: Sequence[str] = ("topics", "group_id", "min_lag", "kafka_config_overrides")
    template_fields_renderers = {"kafka_config_overrides": "json"}
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        topics: str | Sequence[str],
        kafka_config_id: str = "kafka_default",
        group_id: str | None = None,
        min_lag: int | str = 1,
        kafka_config_overrides: dict[str, Any] | None = None,
        request_timeout: float = 30.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not topics:
            raise ValueError("KafkaLagSensor needs topics=: a topic name or a list of names")
        if not isinstance(min_lag, str):
            _check_min_lag(min_lag)
        self.topics = topics
        self.kafka_config_id = kafka_config_id
        self.group_id = group_id
        self.min_lag = min_lag
        self.kafka_config_overrides = kafka_config_overrides or {}
        self.request_timeout = request_timeout
        self.deferrable = deferrable

    @property
    def _topics(self) -> list[str]:
        return [self.topics] if isinstance(self.topics, str) else list(self.topics)

    @property
    def _min_lag(self) -> int:
        """``min_lag`` once rendered (a template renders to a string)."""
        value = self.min_lag
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise AEPConfigurationError(f"min_lag must be a whole number, got {value!r}") from None
        try:
            return _check_min_lag(value)
        except ValueError as err:
            raise AEPConfigurationError(str(err)) from None

    def read_lag(self) -> GroupLag:
        """Read the group's current lag (offsets only)."""
        try:
            consumer_conf = lag_consumer_config(self.kafka_config_id, self.kafka_config_overrides, self.group_id)
        except ValueError as err:  # no bootstrap.servers, a refused callback, ...
            raise AEPConfigurationError(f"Kafka connection {self.kafka_config_id!r}: {err}") from None
        try:
            return read_group_lag(consumer_conf, self._topics, timeout=self.request_timeout)
        except LagReadError as err:
            raise KafkaLagReadError(str(err)) from None

    def poke(self, context: Context) -> PokeReturnValue:
        lag = self.read_lag()
        done = lag.total >= self._min_lag
        self.log.info(
            "Group %r lag on %s: %d (%s); %s",
            lag.group_id,
            ", ".join(self._topics),
            lag.total,
            ", ".join(f"{topic}={n}" for topic, n in sorted(lag.by_topic().items())),
            f"at least {self._min_lag}: done" if done else f"below {self._min_lag}: waiting",
        )
        return PokeReturnValue(is_done=done, xcom_value=lag.to_dict() if done else None)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # Check once here: when records already wait, no trip through the triggerer.
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self.defer(
            trigger=KafkaLagTrigger(
                topics=self._topics,
                kafka_config_id=self.kafka_config_id,
                group_id=self.group_id,
                min_lag=self._min_lag,
                poll_interval=self.poke_interval,
                # The trigger keeps its own deadline too, so it ends even where the deferral
                # timeout is not enforced (dag.test() runs triggers inline).
                timeout_at=time.time() + self.timeout,
                kafka_config_overrides=self.kafka_config_overrides,
                request_timeout=self.request_timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: return the lag, or raise its timeout or error."""
        status = event.get("status")
        if status == "success":
            lag = event["lag"]
            self.log.info("Group %r lag on %s reached %d", lag["group_id"], ", ".join(self._topics), lag["lag"])
            return lag
        if status == "timeout":
            # An AirflowSensorTimeout: with soft_fail=True the task is skipped, as in poke mode.
            raise AirflowSensorTimeout(
                f"group lag on {', '.join(self._topics)} stayed at {event['lag']['lag']} (< {self._min_lag}) "
                f"for {self.timeout:g}s"
            )
        raise KafkaLagReadError(str(event.get("message") or event))


def _check_min_lag(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"min_lag must be a whole number of records, at least 1, got {value!r}")
    return value
