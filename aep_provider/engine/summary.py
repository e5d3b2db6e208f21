"""What a run did, as counters for the XCom and one closing log line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PartitionSummary:
    """
    One partition's range and where the run left it.

    :param start: first offset this run read. :param end: snapshot end offset.
    :param committed: offset committed at the end of the run (None if nothing was committed).
    """

    topic: str
    partition: int
    start: int
    end: int
    committed: int | None = None
    records: int = 0
    lost_to_retention: int = 0

    @property
    def lag(self) -> int:
        """Records of the snapshot range left for the next run."""
        done = self.start if self.committed is None else max(self.committed, self.start)
        return max(self.end - done, 0)


@dataclass
class RunSummary:
    """Counters of one run; :meth:`to_dict` is what the operator returns (XCom)."""

    delivered: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    tombstones: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    bytes: int = 0
    seconds: float = 0.0
    stopped_by: str = "end"
    partitions: dict[str, PartitionSummary] = field(default_factory=dict)

    def partition(self, topic: str, partition: int) -> PartitionSummary | None:
        return self.partitions.get(f"{topic}[{partition}]")

    def add_partition(self, summary: PartitionSummary) -> PartitionSummary:
        return self.partitions.setdefault(f"{summary.topic}[{summary.partition}]", summary)

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["lag"] = self.lag
        data["partitions"] = {
            key: {**asdict(p), "lag": p.lag} for key, p in sorted(self.partitions.items())
        }
        return data

    def closing_line(self) -> str:
        rate = self.delivered / self.seconds if self.seconds > 0 else 0.0
        return (
            f"Drain finished ({self.stopped_by}) in {self.seconds:.1f}s: delivered={self.delivered} "
            f"rejected={self.rejected} dead_lettered={self.dead_lettered} skipped={self.skipped} "
            f"(tombstones={self.tombstones}) requests={self.requests} retries={self.retries} "
            f"throttled={self.throttled} bytes={self.bytes} rate={rate:.0f}/s "
            f"partitions={len(self.partitions)} lag_left={self.lag}"
        )
