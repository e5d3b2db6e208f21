"""Trigger for :class:`~aep_provider.sensors.kafka_lag.KafkaLagSensor`: waits for a consumer group's lag."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from aep_provider.engine.config import client_config
from aep_provider.kafka.lag import GroupLag, LagReadError, read_group_lag


def lag_consumer_config(
    kafka_config_id: str, overrides: dict[str, Any] | None = None, group_id: str | None = None
) -> dict[str, Any]:
    """The connection's confluent-kafka settings (as the apache-kafka provider builds them), overrides over them."""
    from aep_provider.kafka.connection import kafka_connection_config

    conf = kafka_connection_config(kafka_config_id)
    conf.update(overrides or {})
    if group_id:
        conf["group.id"] = group_id
    return conf


class KafkaLagTrigger(BaseTrigger):
    """
    Fire once a consumer group's lag on ``topics`` reaches ``min_lag`` records, or at ``timeout_at``.

    Reads offsets only (the group's committed offsets and each partition's start and end): it
    never joins the group, never polls records and never commits.

    Events: ``{"status": "success", "lag": {...}}`` when the lag reached ``min_lag``;
    ``{"status": "timeout", "lag": {...}}`` when ``timeout_at`` passed first;
    ``{"status": "error", "message": ...}`` when the offsets could not be read.

    :param topics: topics whose partitions are summed.
    :param kafka_config_id: the ``kafka`` connection.
    :param group_id: the consumer group, default the connection's ``group.id``.
    :param min_lag: records waiting that make the trigger fire (at least 1).
    :param poll_interval: seconds between two reads of the offsets.
    :param timeout_at: Unix time after which the trigger gives up (None: never).
    :param kafka_config_overrides: confluent-kafka settings merged over the connection's extra.
    :param request_timeout: bound on each broker request, in seconds.
    """

    def __init__(
        self,
        *,
        topics: Sequence[str],
        kafka_config_id: str = "kafka_default",
        group_id: str | None = None,
        min_lag: int = 1,
        poll_interval: float = 30.0,
        timeout_at: float | None = None,
        kafka_config_overrides: dict[str, Any] | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        super().__init__()
        self.topics = list(topics)
        self.kafka_config_id = kafka_config_id
        self.group_id = group_id
        self.min_lag = min_lag
        self.poll_interval = poll_interval
        self.timeout_at = timeout_at
        self.kafka_config_overrides = dict(kafka_config_overrides or {})
        self.request_timeout = request_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "topics": self.topics,
                "kafka_config_id": self.kafka_config_id,
                "group_id": self.group_id,
                "min_lag": self.min_lag,
                "poll_interval": self.poll_interval,
                "timeout_at": self.timeout_at,
                "kafka_config_overrides": self.kafka_config_overrides,
                "request_timeout": self.request_timeout,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        admin: AdminClient | None = None
        conf: dict[str, Any] | None = None
        while True:
            try:
                if conf is None:
                    # The connection lookup and the broker calls block: keep them off the event loop.
                    conf = await sync_to_async(lag_consumer_config)(
                        self.kafka_config_id, self.kafka_config_overrides, self.group_id
                    )
                    # One admin client for every check: no new broker connections each poll.
                    admin = AdminClient(client_config(conf))
                lag: GroupLag = await sync_to_async(read_group_lag)(
                    conf, self.topics, timeout=self.request_timeout, admin=admin
                )
            except (LagReadError, KafkaException, ValueError) as err:
                yield TriggerEvent({"status": "error", "message": str(err)})
                return
            if lag.total >= self.min_lag:
                yield TriggerEvent({"status": "success", "lag": lag.to_dict()})
                return
            now = time.time()
            if self.timeout_at is not None and now >= self.timeout_at:
                yield TriggerEvent({"status": "timeout", "lag": lag.to_dict()})
                return
            self.log.info(
                "Group %r lag on %s is %d (< %d): checking again in %gs",
                lag.group_id,
                ", ".join(self.topics),
                lag.total,
                self.min_lag,
                self.poll_interval,
            )
            wait = self.poll_interval if self.timeout_at is None else min(self.poll_interval, self.timeout_at - now)
            await asyncio.sleep(max(wait, 0))
