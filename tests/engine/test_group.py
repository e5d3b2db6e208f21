"""GroupWatcher: when a member left with no partition may end (engine/group.py)."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

from confluent_kafka import ConsumerGroupState, TopicPartition

from aep_provider.engine.group import GroupWatcher


class DescribingAdmin:
    """Answers describe_consumer_groups with a fixed description (the real call needs a group mid-rebalance)."""

    def __init__(self, state, members: dict[str, list[int]]) -> None:
        self.group = SimpleNamespace(
            state=state,
            members=[
                SimpleNamespace(
                    member_id=m, assignment=SimpleNamespace(topic_partitions=[TopicPartition("t", p) for p in ps])
                )
                for m, ps in members.items()
            ],
        )

    def describe_consumer_groups(self, group_ids, request_timeout):
        future: Future = Future()
        future.set_result(self.group)
        return {group_ids[0]: future}


def watcher(admin: DescribingAdmin, member_id: str | None = "me") -> GroupWatcher:
    group = GroupWatcher({"bootstrap.servers": "127.0.0.1:9", "group.id": "g"}, timeout=1.0)
    group._admin = admin  # type: ignore[assignment]
    group.member_id = member_id
    return group


def test_settled_when_stable_and_the_others_own_every_partition():
    assert watcher(DescribingAdmin(ConsumerGroupState.STABLE, {"a": [0, 1], "b": [2], "me": []})).settled(
        [("t", 0), ("t", 1), ("t", 2)]
    )


def test_not_settled_while_rebalancing_or_a_partition_has_no_owner():
    parts = [("t", 0), ("t", 1), ("t", 2)]
    assert not watcher(DescribingAdmin(ConsumerGroupState.PREPARING_REBALANCING, {"a": [0, 1, 2]})).settled(parts)
    assert not watcher(DescribingAdmin(ConsumerGroupState.STABLE, {"a": [0, 1]})).settled(parts)


def test_not_settled_when_the_group_already_gives_this_member_partitions():
    """Its assignment is on the way: ending now would refuse it while closing (three drains joining at once)."""
    admin = DescribingAdmin(ConsumerGroupState.STABLE, {"a": [0], "me": [1, 2]})
    assert not watcher(admin).settled([("t", 0), ("t", 1), ("t", 2)])
    assert watcher(admin, member_id="someone else").settled([("t", 0), ("t", 1), ("t", 2)])
