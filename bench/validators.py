"""
Which compiled validator checks 1 KB XDM records cheapest: jsonschema-rs or fastjsonschema.

Both compile the same rules (:func:`aep_provider.aep.xdm.aep_rules` of the emulator's example
ExperienceEvent schema) and check the same records, the benchmark's own 1 KB events
(``bench.drain_throughput.make_message``, the record alone), in this one process; the figures are CPU µs per record
(``time.process_time``), the best of ``--repeat`` rounds. For scale: decoding the record with
orjson, which validation needs and the ``xdm`` payload already does.

    .venv/bin/python -m bench.validators --records 20000 --repeat 5

fastjsonschema is not a dependency of the provider: install it to run this (``uv pip install
fastjsonschema``); without it only jsonschema-rs is measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from aep_provider.aep.xdm import XDMValidator, aep_rules

EXAMPLE_SCHEMA = Path(__file__).resolve().parent.parent / "aep_provider/emulator/schemas/example-experience-event.json"


def records(count: int, size: int) -> list[bytes]:
    """``count`` XDM records (the benchmark's events without their envelope), each about ``size`` bytes encoded."""
    from bench.drain_throughput import make_message

    return [make_message(i, size, entity_only=True) for i in range(count)]


def best_us(fn: Callable[[Any], Any], items: list[Any], repeat: int) -> float:
    """CPU µs per item of ``fn`` over ``items``: the best of ``repeat`` rounds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - start)
    return best / len(items) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validators", description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--record-bytes", type=int, default=1000, help="encoded size of one XDM record (default 1000)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    schema = json.loads(EXAMPLE_SCHEMA.read_text())
    encoded = records(args.records, args.record_bytes)
    decoded = [orjson.loads(r) for r in encoded]
    rows: list[tuple[str, float]] = [("orjson.loads (for scale)", best_us(orjson.loads, encoded, args.repeat))]
    ours = XDMValidator(schema)
    if not all(ours.is_valid(d) for d in decoded):
        print("bench.validators: the records do not pass the schema", file=sys.stderr)
        return 1
    rows.append(("jsonschema-rs is_valid", best_us(ours.is_valid, decoded, args.repeat)))
    try:
        import fastjsonschema
    except ImportError:
        print("bench.validators: fastjsonschema is not installed; measured jsonschema-rs only", file=sys.stderr)
    else:
        compiled = fastjsonschema.compile(
            {"$schema": "http://json-schema.org/draft-06/schema#", **aep_rules(schema)}, use_default=False
        )
        rows.append(("fastjsonschema validate", best_us(compiled, decoded, args.repeat)))
    broken = [dict(d, _aepprovider={"channel": "phone"}) for d in decoded[: max(len(decoded) // 10, 1)]]
    rows.append(("jsonschema-rs reason of an invalid record", best_us(ours.reason, broken, args.repeat)))
    size = sum(len(r) for r in encoded) / len(encoded)
    print(f"{args.records:,} records of {size:,.0f} B (xdmEntity), best of {args.repeat} rounds, CPU µs per record:")
    print()
    print("| what | CPU µs per record |")
    print("|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
