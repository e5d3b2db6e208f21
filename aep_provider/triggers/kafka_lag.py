"""Trigger for :class:`~aep_provider.sensors.kafka_lag.KafkaLagSensor`: waits for a consumer group's lag."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from aep_provider.engine.config import client_config
from aep_provider.kafka.lag import GroupLag, LagReadError, read_group_lag

T = TypeVar("T")


async def in_own_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """
    Run the blocking ``func`` in a thread of its own and await its result.

    Not asgiref's ``sync_to_async`` with its thread-sensitive default: that runs every such call
    of the triggerer, whichever trigger makes it, in one shared thread, so a read hanging on a
    dead broker (up to ``request_timeout``) would hold up every other trigger's sync calls. Nor
    the event loop's default executor, a handful of threads shared by all triggers that a few
    dead brokers could fill. A thread per call blocks no one; each call is bounded by its own
    timeout, and the thread is a daemon (it never holds the triggerer's exit).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the trigger was cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            result = func(*args, **kwargs)
        except BaseException as err:  # handed to the awaiting coroutine
            loop.call_soon_threadsafe(settle, None, err)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=work, name=f"aep-{getattr(func, '__name__', 'call')}", daemon=True).start()
    return await future


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
                    conf = await in_own_thread(
                        lag_consumer_config, self.kafka_config_id, self.kafka_config_overrides, self.group_id
                    )
                    # One admin client for every check: no new broker connections each poll.
                    admin = AdminClient(client_config(conf))
                lag: GroupLag = await in_own_thread(
                    read_group_lag, conf, self.topics, timeout=self.request_timeout, admin=admin
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
