"""
The deliveries history at scale: "where is this record?" and the page's queries over 10,000 runs,
against the alternative of reading every run's XCom summary.

Builds a throw-away Airflow home (SQLite, ``airflow db migrate`` including the provider's
tables), writes ``--runs`` runs of one drain task over ``--partitions`` partitions (each run
continuing where the previous one committed; every 10th run dead-letters 3 records in one
partition), through the same code the scheduler-side listener uses. Then times:

* ``where`` (history tables): ``--queries`` random offsets, delivered, dead-lettered and not yet drained;
* the DAG page's queries (runs shown, task totals, rejections by reason);
* the XCom alternative: reading and decoding the same ``--runs`` summaries as JSON text from
  one SQLite table (what a page reading XComs must do at least once per question, before
  scanning their ranges) and finding the offset in them;
* writing one run's rows (the listener's cost per finished DAG run).

    .venv/bin/python -m bench.history_where --runs 10000 --partitions 6
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from typing import Any

RECORDS_PER_RUN = 500


def summary(run: int, partitions: int) -> dict[str, Any]:
    parts = {}
    for p in range(partitions):
        start = run * RECORDS_PER_RUN
        part = {"topic": "events", "partition": p, "start": start, "end": start + RECORDS_PER_RUN,
                "committed": start + RECORDS_PER_RUN, "records": RECORDS_PER_RUN, "topic_end": start + RECORDS_PER_RUN,
                "lag": 0, "topic_lag": 0}  # fmt: skip
        if run % 10 == 0 and p == 0:
            part["marks"] = [[start + 7, start + 10, "dead_lettered", "AEP 400"]]
        parts[f"events[{p}]"] = part
    rejected = 3 if run % 10 == 0 else 0
    return {"mode": "drain", "delivered": partitions * RECORDS_PER_RUN - rejected, "rejected": rejected,
            "dead_lettered": rejected, "skipped": 0, "stopped_by": "end", "seconds": 1.0, "lag": 0, "topic_lag": 0,
            "group_id": "g", "rejected_by_reason": {"AEP 400": rejected} if rejected else {}, "partitions": parts}  # fmt: skip


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)

    home = tempfile.mkdtemp(prefix="aep-bench-history-")
    os.environ.update(AIRFLOW_HOME=home, AIRFLOW__CORE__LOAD_EXAMPLES="False")
    from datetime import datetime, timedelta, timezone

    from airflow.utils import db
    from airflow.utils.session import create_session
    from sqlalchemy import text

    from aep_provider.history import ingest, queries

    db.initdb()
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    built = time.perf_counter()
    write_times = []
    with create_session() as session:
        conn = session.connection()
        conn.execute(text("CREATE TABLE xcom_like (id INTEGER PRIMARY KEY, dag_id TEXT, run_id TEXT, value TEXT)"))
        for run in range(args.runs):
            data = summary(run, args.partitions)
            key = {"dag_id": "bench", "task_id": "drain", "run_id": f"r{run}", "map_index": -1, "try_number": 1}
            from aep_provider.history import records

            row = {**key, **records.delivery_row(data), "run_type": "scheduled", "state": "success",
                   "start_date": t0 + timedelta(minutes=5 * run), "end_date": t0 + timedelta(minutes=5 * run, seconds=1)}  # fmt: skip
            started = time.perf_counter()
            ingest._write(conn, [(key, row, data)])
            write_times.append(time.perf_counter() - started)
            conn.execute(
                text("INSERT INTO xcom_like (dag_id, run_id, value) VALUES ('bench', :r, :v)"),
                {"r": f"r{run}", "v": json.dumps(data)},
            )
    print(f"built {args.runs} runs x {args.partitions} partitions in {time.perf_counter() - built:.1f}s")

    end = args.runs * RECORDS_PER_RUN
    rng = random.Random(7)
    offsets = [rng.randrange(0, end) for _ in range(args.queries)]
    offsets += [10 * RECORDS_PER_RUN * k + 8 for k in range(10)]  # dead-lettered
    offsets += [end + 5]  # not yet drained
    where_times = []
    statuses: dict[str, int] = {}
    with create_session() as session:
        for offset in offsets:
            started = time.perf_counter()
            found = queries.where(session, "events", 0, offset, {"bench"})
            where_times.append(time.perf_counter() - started)
            status = found["answers"][0]["status"]
            statuses[status] = statuses.get(status, 0) + 1
        started = time.perf_counter()
        shown = queries.runs(session, {"bench"}, "drain")
        queries.tasks(session, {"bench"})
        queries.rejections_by_reason(session, {"bench"}, "drain", since=t0)
        page = time.perf_counter() - started
        plan = session.execute(
            text(
                "EXPLAIN QUERY PLAN SELECT id FROM aep_delivery_range WHERE topic='events' AND kafka_partition=0 "
                "AND start_offset <= :o AND end_offset > :o"
            ),
            {"o": offsets[0]},
        ).all()
        xcom_times = []
        for offset in offsets[:5]:
            started = time.perf_counter()
            hits = []
            for (value,) in session.execute(text("SELECT value FROM xcom_like WHERE dag_id='bench'")):
                part = json.loads(value)["partitions"]["events[0]"]
                if part["start"] <= offset < part["committed"]:
                    hits.append(part)
            assert len(hits) == 1
            xcom_times.append(time.perf_counter() - started)
    size = os.path.getsize(os.path.join(home, "airflow.db"))
    print(f"where (history tables), {len(offsets)} queries: p50 {_ms(statistics.median(where_times))}, "
          f"p95 {_ms(sorted(where_times)[int(0.95 * len(where_times)) - 1])}, max {_ms(max(where_times))}; answers {statuses}")  # fmt: skip
    print(f"DAG page queries ({len(shown)} runs shown, totals, reasons): {_ms(page)}")
    print(
        f"XCom alternative, read+decode {args.runs} summaries per question: p50 {_ms(statistics.median(xcom_times))}, max {_ms(max(xcom_times))}"
    )
    print(
        f"listener write per run ({args.partitions} ranges): p50 {_ms(statistics.median(write_times))}, max {_ms(max(write_times))}"
    )
    print(f"query plan: {'; '.join(str(r[-1]) for r in plan)}")
    print(f"database file {size / 1e6:.1f} MB (Airflow's own tables included)")
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
