"""
Redrives: the dead-letter topic's records sent to AEP again, once the cause of their rejection is fixed.

A redrive is a drain of the dead-letter topic with a consumer group of its own
(:func:`redrive_group`), committed like any drain. Each record is first turned back into the
record it was dead-lettered from (:func:`~aep_provider.engine.dlq.original_record`: topic, partition, offset, headers and
timestamp from the ``aep.source.*`` headers), so the payload shaper builds the same message and
the same ``_id``. A record rejected again goes back to the dead-letter topic with its original
coordinates; it lands past the run's snapshot end, so the run does not read it again: it waits
for the next redrive.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from aep_provider.engine.config import DrainConfig
from aep_provider.engine.dlq import original_record
from aep_provider.engine.drain import DrainEngine, Sender
from aep_provider.engine.payload import KafkaRecord, PassthroughShaper, PayloadShaper, Shaped
from aep_provider.engine.plan import GroupOffsetsPlanner

log = logging.getLogger(__name__)

#: Appended to the drain's ``group.id`` to name the group whose offsets a redrive commits.
REDRIVE_GROUP_SUFFIX = ".dlq-redrive"

#: Why a dead-letter topic record is not redriven (the label of its skip).
NOT_A_DEAD_LETTER = "not a dead letter"
ANOTHER_TOPIC = "another task's topic"


def redrive_group(group_id: str) -> str:
    """The consumer group whose committed offsets track a drain group's redrives of its dead-letter topic."""
    return f"{group_id}{REDRIVE_GROUP_SUFFIX}"


def redrive_consumer_config(consumer_conf: Mapping[str, Any]) -> dict[str, Any]:
    """
    The drain's consumer settings for reading its dead-letter topic: the redrive group, and the
    earliest offset where that group has none (a first redrive reads every dead letter kept).
    """
    return {
        **consumer_conf,
        "group.id": redrive_group(str(consumer_conf["group.id"])),
        "auto.offset.reset": "earliest",
    }


class RedriveShaper(PayloadShaper):
    """
    Shapes a dead letter as its original record with the task's own shaper, so the message (and its
    ``_id``) is the one the drain built. A record that is not a dead letter, or one dead-lettered
    from a topic this task does not drain (a dead-letter topic shared by several tasks), is skipped:
    it stays in the dead-letter topic, and the redrive group moves past it.

    :param inner: the task's shaper.
    :param source_topics: the topics the task drains.
    """

    def __init__(self, inner: PayloadShaper, source_topics: Collection[str]) -> None:
        self.inner = inner
        self.source_topics = frozenset(source_topics)
        self._warned: set[str] = set()

    def shape(self, record: KafkaRecord) -> Shaped:
        original = original_record(record)
        if original is None:
            return self._skip(record, NOT_A_DEAD_LETTER, "it has no aep.source.topic/partition/offset headers")
        if original.topic not in self.source_topics:
            return self._skip(
                record,
                ANOTHER_TOPIC,
                f"it was dead-lettered from topic {original.topic!r}, which this task does not drain",
            )
        shaped: Shaped = self.inner.shape(original)
        return shaped

    def _skip(self, record: KafkaRecord, label: str, why: str) -> Shaped:
        if label not in self._warned:  # once per kind and run: a shared topic may hold many
            self._warned.add(label)
            log.warning(
                "Not redriving %s[%d]@%d: %s; skipped (counted as skipped, %r), the redrive group moves past it",
                record.topic,
                record.partition,
                record.offset,
                why,
                label,
            )
        return Shaped(skip=True, skip_label=label)


class RedrivePlanner(GroupOffsetsPlanner):
    """A drain of the dead-letter topic by the redrive group: its committed offsets up to the snapshot end."""

    mode = "redrive"

    def __init__(self, timeout: float = 30.0) -> None:
        super().__init__(reset="earliest", timeout=timeout)


def redrive_engine(
    *,
    consumer_conf: Mapping[str, Any],
    source_topics: Collection[str],
    sender: Sender,
    config: DrainConfig,
    shaper: PayloadShaper | None = None,
) -> DrainEngine:
    """
    A run that redrives ``config.dlq_topic``: the drain's consumer settings, limits and shaper,
    reading the dead-letter topic with the redrive group; rejected records go back to it.

    :param consumer_conf: the drain's consumer settings (its ``group.id`` names the redrive group).
    :param source_topics: the topics the drain reads: dead letters from other topics are skipped.
    """
    if not config.dlq_topic:
        raise ValueError("a redrive needs dlq_topic: the dead-letter topic whose records it sends again")
    return DrainEngine(
        consumer_conf=redrive_consumer_config(consumer_conf),
        topics=[config.dlq_topic],
        sender=sender,
        config=config,
        shaper=RedriveShaper(shaper or PassthroughShaper(), source_topics),
        planner=RedrivePlanner(timeout=config.kafka_timeout_seconds),
    )
