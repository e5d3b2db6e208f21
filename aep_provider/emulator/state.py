"""Everything the emulator remembers between requests, behind one lock."""

from __future__ import annotations

import collections
import copy
import json
import math
import secrets
import threading
import time
from collections import defaultdict
from typing import IO, Any, NamedTuple

from aep_provider.emulator.config import EmulatorConfig, EmulatorConfigError, Fault
from aep_provider.emulator.datalake import DataLake

#: DCS allows at most this many ``?syncValidation=true`` requests per minute per inlet.
SYNC_VALIDATIONS_PER_MINUTE = 60


class Accepted(NamedTuple):
    """
    The messages one request got accepted.

    Stored as the request body and positions, not as decoded dicts: nothing is spent on the
    hot path, it takes about the size of the JSON, and 100,000 stored messages do not become
    millions of objects for the garbage collector to walk. :meth:`decode` rebuilds them.
    """

    inlet_id: str
    #: the request body as received.
    raw: bytes
    #: positions of the accepted messages in the batch; ``None``: the body is the one message.
    indexes: list[int] | None
    #: ``header.imsOrgId`` the inlet filled in where missing (``None``: raw data, kept as sent).
    fill_org: str | None
    #: the accepted messages as decoded (only for the JSONL record; dropped once stored).
    messages: list[Any]
    xaction_ids: list[str]
    received_ms: int

    def decode(self) -> list[dict[str, Any]]:
        data = json.loads(self.raw)
        messages = [data] if self.indexes is None else [data["messages"][i] for i in self.indexes]
        if self.fill_org is not None:
            for message in messages:
                if message["header"].get("imsOrgId") is None:
                    message["header"]["imsOrgId"] = self.fill_org
        return messages


class _Window:
    """Fixed-window request counter (per inlet): cheap, and exact enough for a 429 test."""

    __slots__ = ("length", "limit", "start", "used")

    def __init__(self, limit: float, length: float) -> None:
        self.limit = limit
        self.length = length
        self.start = 0.0
        self.used = 0

    def admit(self, now: float) -> float | None:
        """Count one request; ``None`` if admitted, else seconds until the window reopens."""
        if now - self.start >= self.length:
            self.start = now
            self.used = 0
        if self.used >= self.limit:
            return self.length - (now - self.start)
        self.used += 1
        return None


class _SlidingCount:
    """Messages admitted in the last ``length`` seconds (per inlet): "no more than N in any second"."""

    __slots__ = ("entries", "length", "limit", "total")

    def __init__(self, limit: float, length: float = 1.0) -> None:
        self.limit = limit
        self.length = length
        self.entries: collections.deque[tuple[float, int]] = collections.deque()
        self.total = 0

    def admit(self, now: float, count: int) -> float | None:
        """Count ``count`` messages; ``None`` if admitted, else seconds until enough leave the window."""
        while self.entries and now - self.entries[0][0] >= self.length:
            self.total -= self.entries.popleft()[1]
        if self.entries and self.total + count > self.limit:
            return max(self.entries[0][0] + self.length - now, 0.001)
        self.entries.append((now, count))
        self.total += count
        return None


class EmulatorState:
    """
    Tokens, faults, accepted messages and counters, shared by all request threads.

    :param config: what the emulator imitates.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._record_file: IO[str] | None = None
        self._seq = 0
        #: accepted messages after the inlet: Catalog batches validated asynchronously.
        self.lake = DataLake(config)
        self._reset_locked()

    def _reset_locked(self) -> None:
        self._tokens: dict[str, float] = {}
        self._faults: list[list[Any]] = []  # [fault, remaining or None]
        self._accepted: list[Accepted] = []
        self._requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._counters: dict[str, int] = defaultdict(int)
        self._accepted_by_inlet: dict[str, int] = defaultdict(int)
        self._rate: dict[str, _Window] = {}
        self._sync: dict[str, _Window] = {}
        self._messages: dict[str, _SlidingCount] = {}

    def reset(self) -> None:
        """Forget tokens, faults, accepted messages, batches and counters (the config stays)."""
        with self._lock:
            self._reset_locked()
        self.lake.reset()

    def open(self) -> None:
        """Open the JSONL record file, if one is configured (appending: restarts keep history)."""
        with self._lock:
            if self.config.record_path and self._record_file is None:
                try:
                    self._record_file = open(self.config.record_path, "a", encoding="utf-8")  # noqa: SIM115
                except OSError as err:
                    raise EmulatorConfigError(
                        f"cannot open record file {self.config.record_path}: {err.strerror}"
                    ) from None

    def close(self) -> None:
        with self._lock:
            if self._record_file is not None:
                self._record_file.close()
                self._record_file = None

    # -- ids ---------------------------------------------------------------------------------

    def next_id(self) -> str:
        """A DCS-looking id ``<ms>:<seq>:<n>`` (batch ids and single-message xactionIds)."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        return f"{int(time.time() * 1000)}:{seq}:{seq % 1000}"

    # -- tokens ------------------------------------------------------------------------------

    def issue_token(self) -> str:
        token = "emu." + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.config.token_ttl_seconds
            self._counters["tokens_issued"] += 1
        return token

    def token_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def revoke_tokens(self) -> None:
        """Every token issued so far now answers 401, as if it expired mid-run."""
        with self._lock:
            self._tokens.clear()
            self._counters["token_revocations"] += 1

    # -- faults ------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append([copy.copy(fault), fault.count])

    def take_fault(self, endpoint: str, inlet_id: str | None) -> Fault | None:
        """The first injected fault matching this request, counted down by one."""
        with self._lock:
            if not self._faults:
                return None
            for i, entry in enumerate(self._faults):
                fault, remaining = entry
                if fault.matches(endpoint, inlet_id):
                    if remaining is not None:
                        if remaining <= 1:
                            del self._faults[i]
                        else:
                            entry[1] = remaining - 1
                    self._counters["faults_applied"] += 1
                    return fault
        return None

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f.to_dict(), remaining=r) for f, r in self._faults]

    # -- limits ------------------------------------------------------------------------------

    def admit(self, inlet_id: str, per_second: float | None, sync_validation: bool) -> float | None:
        """``None`` if the request is within the inlet's limits, else seconds to wait (429)."""
        now = time.monotonic()
        limits: list[tuple[dict[str, _Window], float, float]] = []
        if per_second is not None:
            limits.append((self._rate, per_second, 1.0))
        if sync_validation:
            limits.append((self._sync, SYNC_VALIDATIONS_PER_MINUTE, 60.0))
        with self._lock:
            for windows, limit, seconds in limits:
                window = windows.get(inlet_id)
                if window is None:
                    window = windows[inlet_id] = _Window(limit, seconds)
                wait = window.admit(now)
                if wait is not None:
                    self._counters["rate_limited"] += 1
                    return wait
        return None

    def admit_messages(self, inlet_id: str, per_second: float | None, count: int) -> float | None:
        """``None`` if ``count`` more messages are within the inlet's messages/s, else seconds to wait (429)."""
        if per_second is None:
            return None
        now = time.monotonic()
        with self._lock:
            window = self._messages.get(inlet_id)
            if window is None:
                window = self._messages[inlet_id] = _SlidingCount(per_second)
            wait = window.admit(now, count)
            if wait is not None:
                self._counters["rate_limited"] += 1
            return wait

    # -- records and counters ----------------------------------------------------------------

    def record(
        self,
        endpoint: str,
        status: int | str,
        *,
        inlet_id: str | None = None,
        accepted: Accepted | None = None,
        rejected: int = 0,
        body_bytes: int = 0,
    ) -> None:
        """Count one request (before it is answered) and keep what it accepted, in arrival order."""
        lines: list[str] = []
        if accepted is not None and self._record_file is not None:
            inlet, received = _dumps(accepted.inlet_id), accepted.received_ms
            prefix = f'{{"inletId":{inlet},"receivedTimeMs":{received},"xactionId":'
            lines = [
                f'{prefix}{_dumps(x)},"message":{_dumps(m)}}}\n'
                for m, x in zip(accepted.messages, accepted.xaction_ids)
            ]
        with self._lock:
            self._requests[endpoint][str(status)] += 1
            self._counters["bytes_received"] += body_bytes
            if rejected:
                self._counters["messages_rejected"] += rejected
            if accepted is not None and accepted.messages:
                count = len(accepted.messages)
                self._counters["messages_accepted"] += count
                self._accepted_by_inlet[accepted.inlet_id] += count
                if self.config.store_accepted:
                    self._accepted.append(accepted._replace(messages=[], xaction_ids=[]))
                if lines and self._record_file is not None:
                    self._record_file.writelines(lines)
                    self._record_file.flush()

    def count(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self._counters[counter] += n

    def accepted(self, inlet_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self._accepted)
        messages: list[dict[str, Any]] = []
        for entry in entries:
            if inlet_id is None or entry.inlet_id == inlet_id:
                messages.extend(entry.decode())
        return messages

    def received(
        self, inlet_id: str | None = None, since_ms: int | None = None, limit: int | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """
        Accepted messages as ``{"inletId", "receivedTimeMs", "message"}``, in arrival order: those
        received at or after ``since_ms``, the last ``limit`` of them; and how many there are in all.
        """
        with self._lock:
            entries = [e for e in self._accepted if inlet_id is None or e.inlet_id == inlet_id]
        total = sum(len(e.indexes) if e.indexes is not None else 1 for e in entries)
        picked: list[dict[str, Any]] = []
        for entry in reversed(entries):  # newest first, so a limit decodes only what it shows
            if (since_ms is not None and entry.received_ms < since_ms) or (limit is not None and len(picked) >= limit):
                break
            wrapped = [
                {"inletId": entry.inlet_id, "receivedTimeMs": entry.received_ms, "message": m} for m in entry.decode()
            ]
            picked.extend(reversed(wrapped))
        picked = picked[:limit] if limit is not None else picked
        return picked[::-1], total

    def stats(self) -> dict[str, Any]:
        with self._lock:
            requests = {ep: dict(by_status) for ep, by_status in self._requests.items()}
            counters = dict(self._counters)
            by_inlet = dict(self._accepted_by_inlet)
        for ep in ("batch", "single", "token"):
            requests.setdefault(ep, {})
        stats: dict[str, Any] = {
            "requests": requests,
            "requests_total": sum(sum(v.values()) for v in requests.values()),
        }
        for name in (
            "messages_accepted",
            "messages_rejected",
            "tokens_issued",
            "token_revocations",
            "bytes_received",
            "faults_applied",
            "connections_dropped",
            "rate_limited",
        ):
            stats[name] = counters.get(name, 0)
        stats["accepted_by_inlet"] = by_inlet
        # After the inlet: what asynchronous validation made of the accepted messages.
        stats.update(self.lake.stats())
        return stats


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` carries whole seconds; never advertise 0 while still refusing."""
    return str(max(1, math.ceil(seconds)))
