"""Whether the consumer group has finished handing out the partitions (for an instance left with none)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from aep_provider.engine.config import client_config

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]


class GroupWatcher:
    """
    Answers "is every partition of the run owned by some member of a stable group?".

    Under cooperative rebalancing a member that joins while others drain gets an empty first
    assignment and its share only in a later round; it must not end before that round.

    :param consumer_conf: the run's consumer settings (client settings are reused, consumer-only ones dropped).
    :param timeout: seconds allowed for one group description request.
    """

    def __init__(self, consumer_conf: Mapping[str, Any], timeout: float) -> None:
        self.group_id = str(consumer_conf.get("group.id"))
        self.timeout = timeout
        self._conf = client_config(consumer_conf)
        self._admin: AdminClient | None = None
        #: this member's id in the group (set at its first assignment), None while unknown.
        self.member_id: str | None = None

    def settled(self, partitions: Iterable[TopicPartitionKey]) -> bool:
        """
        True when the group is stable and each of ``partitions`` has an owner other than this member;
        also True when the group cannot be described.

        A partition the description already gives to this member is on its way (the member has not
        processed the round's answer yet): ending then would refuse it while closing and leave it to
        the other members or the next run (seen with three drains joining one group at once).
        """
        try:
            self._admin = self._admin or AdminClient(self._conf)
            future = self._admin.describe_consumer_groups([self.group_id], request_timeout=self.timeout)[self.group_id]
            group = future.result(timeout=self.timeout + 1)
        except (KafkaException, TimeoutError, ValueError) as err:
            # Without describe access the old rule applies: an empty share after the grace ends the run.
            log.debug("Could not describe group %r (%s); assuming its assignment is settled", self.group_id, err)
            return True
        if group.state != ConsumerGroupState.STABLE:
            return False
        if any(m.member_id == self.member_id and m.assignment.topic_partitions for m in group.members):
            return False
        owned = {(tp.topic, tp.partition) for member in group.members for tp in member.assignment.topic_partitions}
        return set(partitions) <= owned
