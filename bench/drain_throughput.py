"""
End-to-end throughput of the Kafka → AEP drain, against a real broker and the AEP emulator.

Starts a local Kafka broker (``scripts/kafka_local.py``; or uses ``--bootstrap`` /
``KAFKA_BOOTSTRAP_SERVERS``) and an AEP emulator (in this process, in its own process with
``--emulator subprocess``, or an already running one with ``--emulator-url``), produces
``--records`` XDM messages of about ``--message-bytes`` bytes over ``--partitions`` partitions
of a fresh topic, then measures, each time on a fresh consumer group:

* ``raw``: a bare confluent-kafka consumer reading the same range, sending nothing (the ceiling);
* ``engine``: :class:`~aep_provider.engine.drain.DrainEngine` draining to the emulator, for every
  ``--batch`` × ``--in-flight`` × ``--rate-limit`` combination;
* ``airflow``: apache-kafka's ``ConsumeFromTopicOperator`` with a no-op ``apply_function``
  (``--airflow``; its loop only ends after one empty ``poll_timeout``, so its rate is taken at
  the last record).

Every engine run must deliver exactly the produced messages (emulator count and ids, committed
offsets at the end) or the script exits 1 without printing a speed.

    .venv/bin/python -m bench.drain_throughput --records 100000 --partitions 6 --batch 500 --in-flight 4
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from aep_provider.aep.inlet import InletClient
from aep_provider.aep.settings import AEPSettings
from aep_provider.emulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_IMS_ORG_ID,
    DEFAULT_INLET_ID,
    AEPEmulator,
    EmulatorConfig,
)
from aep_provider.engine import DrainConfig, DrainError, consumer_config, run_drain
from scripts.kafka_local import BOOTSTRAP_ENV, KafkaBroker, KafkaLocalError
from scripts.sample_events import DEFAULT_DATASET_ID, DEFAULT_SCHEMA_ID, sample_event

ID_PREFIX = "drain-bench-"


class BenchError(Exception):
    """A run that cannot be trusted: the message says what was wrong."""


# -- test data ----------------------------------------------------------------------------


def make_message(index: int, size: int, *, entity_only: bool = False) -> bytes:
    """
    One complete XDM ExperienceEvent of about ``size`` encoded bytes, as a web SDK would send it.

    :param index: its sequence number; ``xdmEntity._id`` is ``drain-bench-<index>``.
    :param size: target encoded size; the user agent and page URL carry the padding.
    :param entity_only: the XDM record alone (``payload="xdm"``), ``size`` bytes itself.
    """
    message = sample_event(
        index, schema_id=DEFAULT_SCHEMA_ID, dataset_id=DEFAULT_DATASET_ID, ims_org_id=DEFAULT_IMS_ORG_ID
    )
    entity = message["body"]["xdmEntity"]
    entity["_id"] = f"{ID_PREFIX}{index}"
    entity["identityMap"] = {
        "ECID": [{"id": f"{index * 7919 % 10**38:038d}", "authenticatedState": "ambiguous", "primary": True}]
    }
    entity["environment"] = {
        "type": "browser",
        "browserDetails": {
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
            "viewportWidth": 1280,
            "viewportHeight": 720,
        },
    }
    entity["web"]["webPageDetails"]["URL"] = f"https://shop.example.com/p/{index}"
    entity["web"]["webReferrer"] = {"URL": "https://www.example.org/search?q="}
    document = entity if entity_only else message
    encoded = json.dumps(document, separators=(",", ":")).encode()
    entity["web"]["webReferrer"]["URL"] += "q" * max(0, size - len(encoded))
    return json.dumps(document, separators=(",", ":")).encode()


def create_topic(bootstrap: str, partitions: int) -> str:
    topic = f"bench.drain.{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)
    except (KafkaException, TimeoutError) as err:
        raise BenchError(
            f"could not create topic {topic} on bootstrap.servers={bootstrap!r} within 30s "
            f"({str(err) or 'no answer'}); is the broker running there?"
        ) from None
    deadline = time.monotonic() + 30
    while len(admin.list_topics(topic, timeout=10).topics[topic].partitions) < partitions:
        if time.monotonic() > deadline:
            raise BenchError(f"topic {topic} did not show {partitions} partitions within 30s")
        time.sleep(0.1)
    return topic


def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept referenced until the future resolves
    try:
        admin.delete_topics([topic])[topic].result(timeout=30)
    except KafkaException as err:
        print(f"drain_throughput: could not delete topic {topic}: {err}", file=sys.stderr)


def produce(
    bootstrap: str, topic: str, records: int, partitions: int, message_bytes: int, *, entity_only: bool = False
) -> dict[str, Any]:
    """Produce ``records`` messages (or XDM records alone) round-robin over the partitions; time encoding and sending."""
    t0 = time.perf_counter()
    messages = [make_message(i, message_bytes, entity_only=entity_only) for i in range(records)]
    encoded_seconds = time.perf_counter() - t0
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": max(100_000, records + 1),
            "queue.buffering.max.kbytes": 2_097_151,
            "acks": "all",
        }
    )
    producer.list_topics(topic, timeout=10)  # know every partition before producing to it
    failures: list[str] = []

    def report(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    t1 = time.perf_counter()
    for i, value in enumerate(messages):
        producer.produce(topic, value, partition=i % partitions, on_delivery=report)
        if i % 5000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    seconds = time.perf_counter() - t1
    if left or failures:
        raise BenchError(f"producing failed: {left} undelivered, errors: {failures[:3]}")
    total = sum(len(m) for m in messages)
    return {
        "phase": "produce",
        "records": records,
        "bytes": total,
        "message_bytes": round(total / records),
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds),
        "mb_per_s": round(total / seconds / 1e6, 1),
        "encode_seconds": round(encoded_seconds, 3),
    }


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def group_conf(bootstrap: str) -> dict[str, Any]:
    """The consumer settings the engine would use, on a group never used before."""
    return consumer_config({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:10]}"})


# -- the emulator, here or in its own process ---------------------------------------------------


@dataclass
class Emulator:
    """What the benchmark needs from an emulator, wherever it runs."""

    url: str
    where: str
    stats: Callable[[], dict[str, Any]]
    accepted: Callable[[], list[dict[str, Any]]]
    reset: Callable[[], None]


@contextmanager
def emulator(mode: str, url: str | None) -> Iterator[Emulator]:
    """
    :param mode: ``inprocess`` (a thread here: shares this process's GIL) or ``subprocess``.
    :param url: an emulator started elsewhere (``aep-emulator``); wins over ``mode``.
    """
    if url or mode == "subprocess":
        from aep_provider.emulator import RemoteEmulator

        proc = None
        if not url:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aep_provider.emulator", "--host", "127.0.0.1", "--port", "0"],
                stdout=subprocess.PIPE,
                text=True,
            )
            line = proc.stdout.readline()  # type: ignore[union-attr]
            match = re.search(r"listening on (http://\S+)", line)
            if not match:
                proc.kill()
                raise BenchError(f"the emulator did not start: {line!r}")
            url = match.group(1)
        remote = RemoteEmulator(url, timeout=120)
        try:
            remote.health()
            yield Emulator(
                url=url,
                where="subprocess" if proc else f"external {url}",
                stats=remote.stats,
                accepted=remote.accepted,
                reset=remote.reset,
            )
        finally:
            remote.close()
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
        return
    with AEPEmulator(EmulatorConfig()) as emu:
        yield Emulator(url=emu.url, where="inprocess", stats=emu.stats, accepted=emu.accepted, reset=emu.reset)


# -- phases ---------------------------------------------------------------------------------------


def rates(phase: str, records: int, nbytes: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "phase": phase,
        **extra,
        "records": records,
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds) if seconds > 0 else 0,
        "mb_per_s": round(nbytes / seconds / 1e6, 1) if seconds > 0 else 0.0,
    }


def raw_read(bootstrap: str, topic: str, ends: dict[int, int], batch: int, timeout: float) -> dict[str, Any]:
    """A bare consumer reading every partition to its end: consumer creation to the last record."""
    want = sum(ends.values())
    started = time.perf_counter()
    consumer = Consumer(group_conf(bootstrap))
    consumer.subscribe([topic])
    count = nbytes = 0
    done: set[int] = {p for p, end in ends.items() if end == 0}
    deadline = time.monotonic() + timeout
    try:
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                raise BenchError(f"raw read: {count}/{want} records after {timeout:g}s")
            for msg in consumer.consume(num_messages=batch, timeout=0.1):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise BenchError(f"raw read: {err.str()}")
                    if msg.offset() >= ends[msg.partition()]:
                        done.add(msg.partition())
                    continue
                count += 1
                nbytes += len(msg.value())
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    if count != want:
        raise BenchError(f"raw read: {count} records, expected {want}")
    return rates("raw", count, nbytes, seconds, batch=batch)


def aep_client(url: str, rate_limit: bool, in_flight: int, deadline: float) -> InletClient:
    """The client the hook would build for a connection to the emulator (same settings path)."""
    values: dict[str, Any] = {
        "inlet_id": DEFAULT_INLET_ID,
        "inlet_url": url,
        "ims_url": url,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "ims_org_id": DEFAULT_IMS_ORG_ID,
        "retry_deadline_seconds": deadline,
        "pool_size": max(in_flight, 1),
    }
    if not rate_limit:
        values.update(max_requests_per_second="off", max_messages_per_second="off")
    return AEPSettings.from_values(values, source="benchmark").create_client()


def engine_drain(
    emu: Emulator,
    bootstrap: str,
    topic: str,
    ends: dict[int, int],
    *,
    batch: int,
    in_flight: int,
    rate_limit: bool,
    timeout: float,
    check_ids: bool,
) -> dict[str, Any]:
    """One drain of the whole topic on a fresh group; raise :class:`BenchError` unless all N arrived once."""
    want = sum(ends.values())
    emu.reset()
    client = aep_client(emu.url, rate_limit, in_flight, deadline=min(timeout, 60.0))
    config = DrainConfig(
        max_batch_records=batch,
        max_in_flight=in_flight,
        kafka_timeout_seconds=30.0,
        max_run_seconds=timeout,
        progress_interval_seconds=3600.0,
    )
    try:
        summary = run_drain(consumer_conf=group_conf(bootstrap), topics=[topic], sender=client, config=config)
    except DrainError as err:
        raise BenchError(f"engine batch={batch} in_flight={in_flight}: the drain failed: {err}") from None
    finally:
        client.close()
    stats = emu.stats()
    problems = []
    if summary.stopped_by != "end":
        problems.append(f"stopped by {summary.stopped_by}")
    if summary.delivered != want:
        problems.append(f"engine delivered {summary.delivered}")
    if stats["messages_accepted"] != want:
        problems.append(f"emulator accepted {stats['messages_accepted']}")
    committed = {p.partition: p.committed for p in summary.partitions.values()}
    if committed != ends:
        problems.append(f"committed {committed} != end offsets {ends}")
    if check_ids and not problems:
        ids = {m["body"]["xdmEntity"]["_id"] for m in emu.accepted()}
        if ids != {f"{ID_PREFIX}{i}" for i in range(want)}:
            problems.append(f"emulator holds {len(ids)} distinct expected-looking ids, not the {want} produced")
    if problems:
        raise BenchError(
            f"engine batch={batch} in_flight={in_flight}: expected {want} messages; " + "; ".join(problems)
        )
    return rates(
        "engine",
        summary.delivered,
        summary.bytes,
        summary.seconds,
        batch=batch,
        in_flight=in_flight,
        rate_limit="on" if rate_limit else "off",
        requests=summary.requests,
        retries=summary.retries,
        emulator_requests=stats["requests"]["batch"],
    )


def airflow_operator(
    bootstrap: str, topic: str, ends: dict[int, int], batch: int, poll_timeout: float
) -> dict[str, Any]:
    """``ConsumeFromTopicOperator.execute`` in-process with an env-var connection and a no-op apply_function."""
    from airflow.providers.apache.kafka.operators.consume import ConsumeFromTopicOperator

    want = sum(ends.values())
    conn_id = f"bench_kafka_{uuid.uuid4().hex[:8]}"
    env = f"AIRFLOW_CONN_{conn_id.upper()}"
    extra = dict(group_conf(bootstrap))
    extra.pop("enable.partition.eof")  # the operator stops on an empty poll, not on EOF events
    os.environ[env] = json.dumps({"conn_type": "kafka", "extra": extra})
    seen = {"count": 0, "bytes": 0, "last": 0.0}

    def apply_function(msg: Any) -> None:
        seen["count"] += 1
        seen["bytes"] += len(msg.value())
        seen["last"] = time.perf_counter()

    operator = ConsumeFromTopicOperator(
        task_id="bench_consume",
        topics=[topic],
        kafka_config_id=conn_id,
        apply_function=apply_function,
        max_batch_size=batch,
        poll_timeout=poll_timeout,
        commit_cadence="end_of_operator",
    )
    try:
        started = time.perf_counter()
        operator.execute(context={})
        wall = time.perf_counter() - started
    finally:
        del os.environ[env]
    if seen["count"] != want:
        raise BenchError(f"ConsumeFromTopicOperator read {seen['count']} records, expected {want}")
    return rates("airflow", want, seen["bytes"], seen["last"] - started, batch=batch, wall_seconds=round(wall, 3))


# -- driver ---------------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"values must be >= 1, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.drain_throughput", description=__doc__.strip().split("\n\n")[0]
    )
    parser.add_argument("--records", type=int, default=100_000, help="messages to produce (default 100000)")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of the topic (default 6)")
    parser.add_argument("--message-bytes", type=int, default=1000, help="encoded size of one message (default 1000)")
    parser.add_argument(
        "--batch", type=int_list, default=[500], help="records per request; a list like 100,500 runs each"
    )
    parser.add_argument("--in-flight", type=int_list, default=[4], help="requests outstanding; a list runs each")
    parser.add_argument(
        "--rate-limit", choices=("on", "off", "both"), default="both",
        help="the client's default 10,000 msg/s + 1,000 req/s limit (default: both)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="measure every phase this many times (default 1)")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get(BOOTSTRAP_ENV),
        help=f"use this broker (default ${BOOTSTRAP_ENV}, else start one)",
    )
    parser.add_argument(
        "--emulator", choices=("inprocess", "subprocess"), default="inprocess", help="where the emulator runs"
    )
    parser.add_argument(
        "--emulator-url", help="use an emulator already running there; it is reset before each engine run"
    )
    parser.add_argument("--no-raw", dest="raw", action="store_false", help="skip the raw consumer phase")
    parser.add_argument("--airflow", action="store_true", help="also time apache-kafka's ConsumeFromTopicOperator")
    parser.add_argument("--airflow-poll-timeout", type=float, default=3.0, help="its poll_timeout (default 3 s)")
    parser.add_argument(
        "--no-check-ids", dest="check_ids", action="store_false", help="only count, skip the per-id check"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on every phase in seconds (default 300)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    return parser


def print_table(result: dict[str, Any], out: TextIO) -> None:
    head = result["conditions"]
    lines = [
        f"# {head['records']:,} records x ~{head['message_bytes']} B over {head['partitions']} partitions; "
        f"emulator {head['emulator']}; load average before {head['loadavg_before']}, after {head['loadavg_after']}"
    ]
    cols = ("phase", "batch", "in_flight", "rate_limit", "records_per_s", "mb_per_s", "seconds", "requests")
    rows = [[str(r.get(c, "")) for c in cols] for r in result["runs"]]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [list(cols), *rows]]
    if result["summary"]:
        lines.append("# median (min-max) records/s over repetitions")
        lines += [f"{s['config']}: {s['median']:,} ({s['min']:,}-{s['max']:,}) n={s['n']}" for s in result["summary"]]
    lines += [f"# note: {note}" for note in result["notes"]]
    print("\n".join(lines), file=out)


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, list[int]] = {}
    for r in runs:
        if r["phase"] == "produce":
            continue
        key = r["phase"] + "".join(f" {k}={r[k]}" for k in ("batch", "in_flight", "rate_limit") if k in r)
        groups.setdefault(key, []).append(r["records_per_s"])
    return [
        {"config": k, "n": len(v), "median": round(statistics.median(v)), "min": min(v), "max": max(v)}
        for k, v in groups.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.records < 1 or args.partitions < 1 or args.repeat < 1:
        parser.error("--records, --partitions and --repeat must be >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Airflow's imports route logs to stdout: keep stdout for the result alone (``--json > file``).
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    limits = {"on": [True], "off": [False], "both": [True, False]}[args.rate_limit]
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    notes: list[str] = []

    def record(run: dict[str, Any]) -> None:
        runs.append(run)
        print(f"drain_throughput: {json.dumps(run)}", file=sys.stderr, flush=True)

    try:
        with ExitStack() as stack:
            bootstrap = args.bootstrap
            if not bootstrap:
                broker = stack.enter_context(KafkaBroker(log=lambda m: print(m, file=sys.stderr)))
                bootstrap = broker.bootstrap
            emu = stack.enter_context(emulator(args.emulator, args.emulator_url))
            topic = create_topic(bootstrap, args.partitions)
            # ~100 MB per run: do not leave it on a shared broker.
            stack.callback(delete_topic, bootstrap, topic)
            produced = produce(bootstrap, topic, args.records, args.partitions, args.message_bytes)
            record(produced)
            ends = end_offsets(bootstrap, topic, args.partitions)
            if sum(ends.values()) != args.records:
                raise BenchError(f"topic {topic} holds {sum(ends.values())} records, expected {args.records}")
            # The first group join of a fresh broker creates __consumer_offsets and the first read
            # pulls the log into the page cache: neither belongs to the first measured phase.
            raw_read(bootstrap, topic, ends, max(args.batch), args.timeout)
            for _ in range(args.repeat):
                if args.raw:
                    record(raw_read(bootstrap, topic, ends, max(args.batch), args.timeout))
                for batch in args.batch:
                    for in_flight in args.in_flight:
                        for limited in limits:
                            record(
                                engine_drain(
                                    emu, bootstrap, topic, ends, batch=batch, in_flight=in_flight,
                                    rate_limit=limited, timeout=args.timeout, check_ids=args.check_ids,
                                )
                            )  # fmt: skip
                if args.airflow:
                    record(airflow_operator(bootstrap, topic, ends, max(args.batch), args.airflow_poll_timeout))
            if args.airflow:
                notes.append(
                    f"airflow rate is taken at its last record; its execute() then waits one empty "
                    f"poll_timeout ({args.airflow_poll_timeout:g}s) before it returns (wall_seconds)"
                )
    except (BenchError, KafkaLocalError, KafkaException) as err:
        print(f"drain_throughput: FAILED, no figures reported: {err}", file=sys.stderr)
        return 1
    result = {
        "conditions": {
            "records": args.records,
            "partitions": args.partitions,
            "message_bytes": produced["message_bytes"],
            "emulator": emu.where,
            "broker": "external " + bootstrap if args.bootstrap else "scripts.kafka_local",
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "runs": runs,
        "summary": summarize(runs),
        "notes": notes,
    }
    if args.json:
        print(json.dumps(result, indent=1), file=out)
    else:
        print_table(result, out)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
