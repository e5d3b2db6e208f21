"""
Side by side, on one topic in one invocation: the limit, the peer and ours (``make bench``).

Starts a Kafka broker (``scripts/kafka_local.py``, or ``--bootstrap``) and the AEP emulator in
its own process, produces ``--events`` XDM events of about ``--message-bytes`` over
``--partitions`` partitions of one fresh topic, then runs each case **in its own process** (so
CPU time and peak RSS are per case) on a consumer group never used before:

* ``limit``: a bare confluent-kafka consumer reading the range, sending nothing;
* ``peer``: apache-kafka's ``ConsumeFromTopicOperator`` with an ``apply_function_batch`` that
  posts each batch to the inlet with a ``requests.Session``, sequentially, without validation
  (the idiomatic way to do this with stock Airflow);
* ``ours``: :func:`~aep_provider.engine.run_drain` (what ``KafkaToAEPOperator`` runs) with the
  client the hook builds, passthrough validation on, client rate limits off.

The three alternate (the order rotates) ``--repeat`` times. Then, unless switched off:

* ``--latency-ms MS``: peer and ours again with every inlet answer delayed by MS (an emulator
  delay fault), on ``--latency-events``;
* throttled: ours with the client's default limits against an emulator enforcing 10,000
  messages/s and 1,000 requests/s, on ``--throttled-events``: messages/s and 429 answers;
* memory: ours at N = events/4 and at 4N = events: peak RSS of each;
* empty: ours again on the group that has just drained everything (a run with nothing to do: it
  must end from offsets alone, without joining the group, or the case fails);
* validation: ours with local XDM validation off and on (``validate_xdm``), alternating, on
  ``--validation-events`` XDM records of ``--message-bytes`` (``payload="xdm"``: the record alone,
  wrapped by the engine), then on the main topic's passthrough messages; the schema is read from
  the emulator's Schema Registry as the operator reads it.

Every case must move exactly its events (the emulator's count must agree) or the script exits 1
without figures. It reports events/s, CPU µs per event (the case process's user + system time
over its events: start-up included, as a worker slot pays it; ``work`` excludes imports and
start-up), peak RSS (``VmHWM``), requests, mean request bytes and the ratios; ``--write FILE`` puts the
report into FILE between ``<!-- generated: bench -->`` markers.

    .venv/bin/python -m bench.compare --events 200000 --repeat 3 --latency-ms 80 --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

CASES = ("limit", "peer", "ours")
INLET_GUARDRAIL = {"max_messages_per_second": 10_000, "max_requests_per_second": 1_000}


class BenchError(Exception):
    """A run that cannot be trusted; the message says why."""


# -- one case, in its own process ------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _group_conf(bootstrap: str, group: str) -> dict[str, Any]:
    from aep_provider.engine import consumer_config

    return consumer_config({"bootstrap.servers": bootstrap, "group.id": group})


def _token(session: Any, url: str) -> str:
    from aep_provider.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    answer = session.post(
        f"{url}/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "scope": "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session",
        },
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def case_limit(args: argparse.Namespace) -> dict[str, Any]:
    """Read ``events`` records and send nothing: what the consumer alone costs."""
    from confluent_kafka import Consumer, KafkaError

    started, cpu0 = time.perf_counter(), _cpu()
    consumer = Consumer(_group_conf(args.bootstrap, args.group))
    consumer.subscribe([args.topic])
    count = nbytes = 0
    deadline = time.monotonic() + args.timeout
    try:
        while count < args.events:
            if time.monotonic() > deadline:
                raise BenchError(f"limit: {count}/{args.events} records after {args.timeout:g}s")
            for msg in consumer.consume(num_messages=500, timeout=0.1):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise BenchError(f"limit: {err.str()}")
                    continue
                count += 1
                nbytes += len(msg.value())
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    return {"events": count, "seconds": seconds, "work_cpu": _cpu() - cpu0, "requests": 0, "bytes": 0}


def case_peer(args: argparse.Namespace) -> dict[str, Any]:
    """``ConsumeFromTopicOperator`` + ``apply_function_batch`` posting each batch with ``requests``."""
    import requests
    from airflow.providers.apache.kafka.operators.consume import ConsumeFromTopicOperator

    from aep_provider.emulator import DEFAULT_CLIENT_ID, DEFAULT_IMS_ORG_ID, DEFAULT_INLET_ID

    session = requests.Session()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {_token(session, args.emulator_url)}",
        "x-api-key": DEFAULT_CLIENT_ID,
        "x-gw-ims-org-id": DEFAULT_IMS_ORG_ID,
        "x-sandbox-name": "prod",
    }
    url = f"{args.inlet_url or args.emulator_url}/collection/batch/{DEFAULT_INLET_ID}"
    seen = {"events": 0, "accepted": 0, "requests": 0, "bytes": 0, "last": 0.0}

    def post_batch(messages: list[Any]) -> None:
        body = b'{"messages":[' + b",".join(m.value() for m in messages) + b"]}"
        answer = session.post(url, data=body, headers=headers, timeout=60)
        answer.raise_for_status()
        seen["accepted"] += sum(1 for r in answer.json()["responses"] if "status" not in r and "statusCode" not in r)
        seen["events"] += len(messages)
        seen["requests"] += 1
        seen["bytes"] += len(body)
        seen["last"] = time.perf_counter()

    conn_id = f"bench_kafka_{uuid.uuid4().hex[:8]}"
    extra = _group_conf(args.bootstrap, args.group)
    extra.pop("enable.partition.eof")  # the operator ends on an empty poll, not on EOF events
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({"conn_type": "kafka", "extra": extra})
    operator = ConsumeFromTopicOperator(
        task_id="peer",
        topics=[args.topic],
        kafka_config_id=conn_id,
        apply_function_batch=post_batch,
        max_messages=args.events,
        max_batch_size=args.peer_batch,
        poll_timeout=1.0,
        commit_cadence="end_of_operator",
    )
    started, cpu0 = time.perf_counter(), _cpu()
    operator.execute(context={})
    if seen["accepted"] != seen["events"]:
        raise BenchError(f"peer: the inlet accepted {seen['accepted']} of {seen['events']}")
    # Its loop ends only after one empty poll: the rate is taken at the last answer.
    return {
        "events": seen["events"],
        "seconds": seen["last"] - started if seen["events"] else time.perf_counter() - started,
        "work_cpu": _cpu() - cpu0,
        "requests": seen["requests"],
        "bytes": seen["bytes"],
    }


def case_ours(args: argparse.Namespace) -> dict[str, Any]:
    """
    What :func:`run_drain` runs, with the client the hook builds (token, retries, limits as asked).

    With no events (the empty case) the run must end from offsets alone, without joining the group.
    """
    from aep_provider.aep.settings import AEPSettings
    from aep_provider.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_IMS_ORG_ID, DEFAULT_INLET_ID
    from aep_provider.emulator.config import EXAMPLE_DATASET_ID, EXAMPLE_SCHEMA_ID
    from aep_provider.engine import DrainConfig, DrainEngine
    from aep_provider.engine.payload import make_shaper
    from aep_provider.engine.validation import SchemaSource, SchemaValidators

    values: dict[str, Any] = {
        "inlet_id": DEFAULT_INLET_ID,
        "inlet_url": args.inlet_url or args.emulator_url,
        "ims_url": args.emulator_url,
        "platform_url": args.emulator_url,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "ims_org_id": DEFAULT_IMS_ORG_ID,
    }
    if not args.client_limits:
        values.update(max_requests_per_second="off", max_messages_per_second="off")
    settings = AEPSettings.from_values(values, source="benchmark")
    client = settings.create_client()
    config = DrainConfig(
        max_records_per_run=args.events or None,
        max_run_seconds=args.timeout,
        progress_interval_seconds=3600.0,
        max_in_flight=args.in_flight,
    )
    cpu0 = _cpu()
    try:
        schemas = None
        if args.validate:  # what the operator does with validate_xdm: the dataset's schema, read once
            source = SchemaSource(settings.create_platform_client(client))
            dataset_schema = source.dataset_schema(EXAMPLE_DATASET_ID, EXAMPLE_SCHEMA_ID)
            schemas = SchemaValidators(source.schema, {dataset_schema.schema_id: dataset_schema})
        shaper = make_shaper(
            args.payload,
            schema_id=EXAMPLE_SCHEMA_ID,
            dataset_id=EXAMPLE_DATASET_ID,
            ims_org_id=DEFAULT_IMS_ORG_ID,
            schemas=schemas,
        )
        engine = DrainEngine(
            consumer_conf=_group_conf(args.bootstrap, args.group),
            topics=[args.topic],
            sender=client,
            config=config,
            shaper=shaper,
        )
        summary = engine.run()
    finally:
        client.close()
    if not args.events and not engine.ended_without_joining:
        raise BenchError("ours: the empty run joined the group instead of ending from offsets alone")
    if summary.delivered != args.events:
        raise BenchError(f"ours: delivered {summary.delivered} of {args.events} (stopped by {summary.stopped_by})")
    return {
        "events": summary.delivered,
        "seconds": summary.seconds,
        "work_cpu": _cpu() - cpu0,
        "requests": summary.requests,
        "bytes": summary.bytes,
        "throttled": summary.throttled,
        "retries": summary.retries,
    }


def peak_rss_mb() -> float:
    """
    This process's peak resident set size in MB.

    ``VmHWM`` rather than ``ru_maxrss``: Linux carries ``ru_maxrss`` over from the parent across
    fork and exec, so every case would report at least the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux; an upper bound


def run_case_here(args: argparse.Namespace) -> int:
    """The child side: run one case, write its figures as JSON to ``--out``."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = {"limit": case_limit, "peer": case_peer, "ours": case_ours}[args.case](args)
    except Exception as err:  # the parent reports it; no figures from a broken case
        Path(args.out).write_text(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        return 1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu"] = usage.ru_utime + usage.ru_stime
    result["peak_rss_mb"] = peak_rss_mb()
    Path(args.out).write_text(json.dumps(result))
    return 0


# -- the parent: broker, emulators, topic, the cases in turn ----------------------------------------


@contextmanager
def _server_process(module: str, *options: str, what: str) -> Iterator[str]:
    """``python -m module`` on a free port in its own process, until the block ends; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0", *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            raise BenchError(f"the {what} did not start: {line!r}")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def emulator_process(config: dict[str, Any]) -> Iterator[Any]:
    """``python -m aep_provider.emulator`` in its own process (its CPU is not any case's)."""
    from aep_provider.emulator import RemoteEmulator

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    try:
        with _server_process("aep_provider.emulator", "--config", handle.name, what="emulator") as url:
            remote = RemoteEmulator(url, timeout=120)
            remote.health()
            yield remote
            remote.close()
    finally:
        os.unlink(handle.name)


@contextmanager
def counting_inlet_process() -> Iterator[Any]:
    """``python -m bench.counting_inlet`` in its own process: validates each body, accepts and counts."""
    from bench.counting_inlet import CountingInletClient

    with _server_process("bench.counting_inlet", what="counting inlet") as url:
        client = CountingInletClient(url)
        yield client
        client.close()


class Runner:
    """Runs cases in child processes against one topic and checks each one's count."""

    def __init__(self, args: argparse.Namespace, bootstrap: str, topic: str) -> None:
        self.args = args
        self.bootstrap = bootstrap
        self.topic = topic
        self.rows: list[dict[str, Any]] = []

    def run(
        self,
        label: str,
        case: str,
        emulator: Any,
        events: int,
        *,
        group: str | None = None,
        client_limits: bool = False,
        faults: list[Any] = (),  # type: ignore[assignment]
        inlet: Any = None,
        topic: str | None = None,
        options: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Run one case; ``inlet`` (default: the emulator) answers the batches, the emulator the tokens."""
        emulator.reset()
        for fault in faults:
            emulator.inject(fault)
        if inlet is not None:
            inlet.reset()
        group = group or f"bench-{uuid.uuid4().hex[:10]}"
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            out = handle.name
        command = [
            sys.executable, "-m", "bench.compare", "--case", case, "--out", out,
            "--bootstrap", self.bootstrap, "--topic", topic or self.topic, "--group", group,
            "--emulator-url", emulator.url, "--events", str(events),
            "--timeout", str(self.args.timeout), "--peer-batch", str(self.args.peer_batch),
            "--in-flight", str(self.args.in_flight),
        ]  # fmt: skip
        if client_limits:
            command.append("--client-limits")
        if inlet is not None:
            command += ["--inlet-url", inlet.url]
        command += options
        try:
            subprocess.run(command, check=False, timeout=self.args.timeout + 120, stdout=sys.stderr)
            result = json.loads(Path(out).read_text() or '{"error": "no result written"}')
        finally:
            os.unlink(out)
        if "error" in result:
            raise BenchError(f"{label} ({case}): {result['error']}")
        stats = (inlet or emulator).stats()
        if case != "limit" and stats["messages_accepted"] != events:
            raise BenchError(f"{label} ({case}): the inlet accepted {stats['messages_accepted']}, expected {events}")
        if result["events"] != events:
            raise BenchError(f"{label} ({case}): moved {result['events']} events, expected {events}")
        row = {
            "label": label,
            "case": case,
            "group": group,
            **result,
            "rate_limited": stats.get("rate_limited", 0),
            "answers_429": sum(
                v for by_status in stats["requests"].values() for k, v in by_status.items() if k == "429"
            ),
        }
        self.rows.append(row)
        print(f"bench: {json.dumps(row)}", file=sys.stderr, flush=True)
        return row


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median figures of the rows of one label and case."""
    events = rows[0]["events"]
    per_event = [r["cpu"] / events * 1e6 for r in rows] if events else [0.0]
    work = [r["work_cpu"] / events * 1e6 for r in rows] if events else [0.0]
    requests = _median(rows, "requests")
    return {
        "n": len(rows),
        "events": events,
        "events_per_s": _median(rows, "events") / _median(rows, "seconds") if events else 0.0,
        "events_per_s_range": (
            (min(r["events"] / r["seconds"] for r in rows), max(r["events"] / r["seconds"] for r in rows))
            if events
            else (0.0, 0.0)
        ),
        "seconds": _median(rows, "seconds"),
        "cpu_us": statistics.median(per_event),
        "work_cpu_us": statistics.median(work),
        "cpu_s": _median(rows, "cpu"),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
        "requests": requests,
        "mean_request_bytes": (_median(rows, "bytes") / requests) if requests else 0.0,
        "throttled": max(r.get("throttled", 0) for r in rows),
        "answers_429": max(r["answers_429"] for r in rows),
    }


def report(runner: Runner, args: argparse.Namespace, conditions: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in runner.rows:
        groups.setdefault((row["label"], row["case"]), []).append(row)
    table = {f"{label}/{case}": figures(rows) for (label, case), rows in groups.items()}
    lines = [
        f"Machine: {conditions['machine']}; load average before {conditions['loadavg_before']}, "
        f"after {conditions['loadavg_after']}.",
        f"Topic: {args.events:,} events of {conditions['message_bytes']:,} B over {args.partitions} partitions "
        f"(Kafka from {conditions['broker']}); "
        + (
            "main and memory cases post to the counting inlet (`bench/counting_inlet.py`), latency and throttled "
            "cases to the AEP emulator"
            if args.counting_inlet
            else "every case posts to the AEP emulator"
        )
        + ", each in its own process; every case in its own process on a fresh consumer group.",
        "",
        f"Command: `{conditions['command']}` ({conditions['wall_minutes']:.1f} min in all)",
        "",
        "| case | events | seconds | events/s (median; min–max) | CPU s | CPU µs/event (process; work only) "
        "| peak RSS MB | requests | mean request bytes | 429s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, f in table.items():
        low, high = f["events_per_s_range"]
        lines.append(
            f"| {key} (n={f['n']}) | {f['events']:,} | {f['seconds']:.1f} | {f['events_per_s']:,.0f}; "
            f"{low:,.0f}–{high:,.0f} | {f['cpu_s']:.1f} | {f['cpu_us']:.1f}; {f['work_cpu_us']:.1f} "
            f"| {f['peak_rss_mb']:.0f} | {f['requests']:,.0f} | {f['mean_request_bytes']:,.0f} | {f['answers_429']} |"
        )
    ratios: list[str] = []

    def ratio(name: str, a: str, b: str, key: str) -> None:
        if a in table and b in table and table[b][key]:
            value = table[a][key] / table[b][key]
            ratios.append(f"- {name}: {value:.2f}")
            conditions.setdefault("ratios", {})[name] = round(value, 3)

    ratio("events/s, ours / peer", "main/ours", "main/peer", "events_per_s")
    ratio("events/s, ours / limit", "main/ours", "main/limit", "events_per_s")
    ratio("CPU per event, ours / peer", "main/ours", "main/peer", "cpu_us")
    ratio("CPU per event (work only), ours / peer", "main/ours", "main/peer", "work_cpu_us")
    ratio(
        f"events/s at {args.latency_ms:g} ms per request, ours / peer", "latency/ours", "latency/peer", "events_per_s"
    )
    ratio("peak RSS, ours at 4N / ours at N", "memory 4N/ours", "memory N/ours", "peak_rss_mb")
    for payload in ("xdm", "passthrough"):
        on, off = f"validation on ({payload})/ours", f"validation off ({payload})/ours"
        ratio(f"CPU per run, validation on / off ({payload}, 1 KB records)", on, off, "cpu_s")
        ratio(f"CPU per event (work only), validation on / off ({payload})", on, off, "work_cpu_us")
    if "main/ours" in table:
        f = table["main/ours"]
        ratios.append(f"- mean request body of ours / max_batch_bytes (1,000,000): {f['mean_request_bytes'] / 1e6:.2f}")
    if "throttled/ours" in table:
        f = table["throttled/ours"]
        ratios.append(
            f"- throttled (inlet enforcing 10,000 msg/s and 1,000 req/s; client default limits): "
            f"{f['events_per_s']:,.0f} messages/s, {f['answers_429']} answers 429"
        )
    text = "\n".join(lines + ["", "Ratios (medians of this invocation):", "", *ratios])
    return text, {"conditions": conditions, "figures": table, "runs": runner.rows}


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def write_block(path: Path, text: str) -> None:
    """Put ``text`` between the ``generated: bench`` markers of ``path`` (appended when missing)."""
    begin, end = "<!-- generated: bench -->", "<!-- end generated: bench -->"
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in current and end in current:
        current = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, current, flags=re.S)
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(current, encoding="utf-8")


def orchestrate(args: argparse.Namespace) -> int:
    from bench.drain_throughput import create_topic, end_offsets, produce
    from scripts.kafka_local import KafkaBroker, KafkaLocalError

    started = time.monotonic()

    def want(part: str) -> bool:
        return not args.only or part in args.only

    load_before = [round(x, 2) for x in os.getloadavg()]
    base = {"store_accepted": False}
    try:
        with ExitStack() as stack:
            bootstrap = args.bootstrap
            if not bootstrap:
                bootstrap = stack.enter_context(KafkaBroker(log=lambda m: print(m, file=sys.stderr))).bootstrap
            topic = create_topic(bootstrap, args.partitions)
            stack.callback(delete_topic, bootstrap, topic)
            produced = produce(bootstrap, topic, args.events, args.partitions, args.message_bytes)
            if sum(end_offsets(bootstrap, topic, args.partitions).values()) != args.events:
                raise BenchError(f"topic {topic} does not hold {args.events} events")
            emulator = stack.enter_context(emulator_process(base))
            # The main cases post to an inlet that only counts: the emulator's checks would cost more
            # CPU than the clients on a 2-core machine, and every case would measure them instead.
            inlet = stack.enter_context(counting_inlet_process()) if args.counting_inlet else None
            runner = Runner(args, bootstrap, topic)
            runner.run("warm-up", "limit", emulator, args.events)  # page cache, __consumer_offsets
            runner.rows.clear()
            last_ours_group = None
            for rep in range(args.repeat if want("main") else 0):
                order = CASES[rep % 3 :] + CASES[: rep % 3]  # alternate who goes first
                for case in order:
                    row = runner.run("main", case, emulator, args.events, inlet=inlet)
                    if case == "ours":
                        last_ours_group = row["group"]
            if args.empty and last_ours_group and want("empty"):
                runner.run("empty", "ours", emulator, 0, group=last_ours_group)
            if args.memory and want("memory"):
                quarter = max(args.events // 4, 1)
                for _ in range(args.repeat):
                    runner.run("memory N", "ours", emulator, quarter, inlet=inlet)
                    runner.run("memory 4N", "ours", emulator, args.events, inlet=inlet)
            if args.latency_ms and want("latency"):
                from aep_provider.emulator import Fault

                latency_events = min(args.latency_events, args.events)
                delay = Fault(endpoint="batch", count=None, delay_seconds=args.latency_ms / 1000)
                for rep in range(args.repeat):
                    for case in ("peer", "ours") if rep % 2 == 0 else ("ours", "peer"):
                        runner.run("latency", case, emulator, latency_events, faults=[delay])
            if args.validation and want("validation"):
                # 1 KB XDM records (payload="xdm"), validation off and on, alternating; then passthrough.
                records = min(args.validation_events, args.events)
                xdm_topic = create_topic(bootstrap, args.partitions)
                stack.callback(delete_topic, bootstrap, xdm_topic)
                produce(bootstrap, xdm_topic, records, args.partitions, args.message_bytes, entity_only=True)
                for rep in range(args.repeat):
                    for validate in (False, True) if rep % 2 == 0 else (True, False):
                        label = f"validation {'on' if validate else 'off'} (xdm)"
                        options = ("--payload", "xdm") + (("--validate",) if validate else ())
                        runner.run(label, "ours", emulator, records, inlet=inlet, topic=xdm_topic, options=options)
                for rep in range(args.repeat):
                    for validate in (False, True) if rep % 2 == 0 else (True, False):
                        label = f"validation {'on' if validate else 'off'} (passthrough)"
                        options = ("--validate",) if validate else ()
                        runner.run(label, "ours", emulator, records, inlet=inlet, options=options)
            if args.throttled and want("throttled"):
                inlet = {"inlet_id": _inlet_id(), **INLET_GUARDRAIL}
                throttled = stack.enter_context(emulator_process({**base, "inlets": [inlet]}))
                throttled_events = min(args.throttled_events, args.events)
                for _ in range(args.repeat):
                    runner.run("throttled", "ours", throttled, throttled_events, client_limits=True)
    except (BenchError, KafkaLocalError) as err:
        print(f"bench: FAILED, no figures reported: {err}", file=sys.stderr)
        return 1
    conditions = {
        "machine": machine(),
        "message_bytes": produced["message_bytes"],
        "broker": f"external {args.bootstrap}" if args.bootstrap else "scripts.kafka_local",
        "loadavg_before": load_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "command": "python -m bench.compare " + " ".join(args.argv),
        "wall_minutes": (time.monotonic() - started) / 60,
    }
    text, document = report(runner, args, conditions)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(document, indent=1))
    if args.write:
        write_block(Path(args.write), text)
    return 0


def delete_topic(bootstrap: str, topic: str) -> None:
    """Delete the benchmark's topic (about 1 GB at 800,000 events): never leave it on a shared broker."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept referenced until the future resolves
    try:
        admin.delete_topics([topic])[topic].result(timeout=30)
    except KafkaException as err:
        print(f"bench: could not delete topic {topic}: {err}", file=sys.stderr)


def _inlet_id() -> str:
    from aep_provider.emulator import DEFAULT_INLET_ID

    return DEFAULT_INLET_ID


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.strip().split("\n\n")[0])
    add = parser.add_argument
    add("--events", type=int, default=200_000, help="events in the topic (default 200000)")
    add("--partitions", type=int, default=6, help="partitions of the topic (default 6)")
    add("--message-bytes", type=int, default=1000, help="encoded size of one event (default 1000)")
    add("--repeat", type=int, default=3, help="times each case runs, alternating (default 3)")
    add("--peer-batch", type=int, default=800, help="records per request of the peer (default 800)")
    add("--in-flight", type=int, default=4, help="ours' max_in_flight (default 4, the operator's default)")
    add("--latency-ms", type=float, default=80.0, help="round trip added to each inlet answer; 0 skips (default 80)")
    add("--latency-events", type=int, default=100_000, help="events of the latency cases (default 100000)")
    add("--no-throttled", dest="throttled", action="store_false", help="skip the throttled case")
    add("--throttled-events", type=int, default=100_000, help="events of the throttled case (default 100000)")
    add("--no-memory", dest="memory", action="store_false", help="skip the memory case")
    add("--no-empty", dest="empty", action="store_false", help="skip the empty run")
    add("--no-validation", dest="validation", action="store_false", help="skip the validation case")
    add("--validation-events", type=int, default=200_000,
        help="events of the validation case: XDM records of --message-bytes, validation off vs on (default 200000)")  # fmt: skip
    add("--emulator-inlet", dest="counting_inlet", action="store_false",
        help="main and memory cases post to the AEP emulator, not to the counting inlet")  # fmt: skip
    add("--only", action="append", choices=("main", "empty", "memory", "latency", "throttled", "validation"),
        help="run only these parts (repeatable; default: all)")  # fmt: skip
    add("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), help="use this broker (else start one)")
    add("--timeout", type=float, default=600.0, help="bound on every case in seconds (default 600)")
    add("--write", metavar="FILE", help="put the report into FILE (e.g. BENCHMARKS.md) between markers")
    add("--json-out", metavar="FILE", help="write every run and the figures as JSON")
    # The child side (one case): not for people.
    add("--case", choices=CASES, help=argparse.SUPPRESS)
    add("--out", help=argparse.SUPPRESS)
    add("--topic", help=argparse.SUPPRESS)
    add("--group", help=argparse.SUPPRESS)
    add("--emulator-url", help=argparse.SUPPRESS)
    add("--client-limits", action="store_true", help=argparse.SUPPRESS)
    add("--inlet-url", help=argparse.SUPPRESS)
    add("--payload", default="passthrough", help=argparse.SUPPRESS)
    add("--validate", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    if args.case:
        return run_case_here(args)
    if min(args.events, args.partitions, args.repeat, args.peer_batch) < 1:
        parser.error("--events, --partitions, --repeat and --peer-batch must be >= 1")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
