"""Produce sample XDM ExperienceEvents (complete AEP streaming messages) to a Kafka topic.

Used by the local stack (``make run``) and the end-to-end test::

    python -m scripts.sample_events --bootstrap 127.0.0.1:9092 --topic aep.events --rate 2
    python -m scripts.sample_events --bootstrap 127.0.0.1:9092 --topic aep.events --count 20

A small share of the events (``--invalid-share``, 5 % by default) breaks the example schema in one
of the seven ways of :data:`INVALID_KINDS`, in turn: with local validation on they end in the
dead-letter topic with their reason; with ``validate_xdm=False`` AEP (the emulator) accepts them,
then fails them, and the next run reports them as ``failed_in_aep``.

Schema and dataset ids come from ``AEP_SCHEMA_ID`` / ``AEP_DATASET_ID`` (needed for real AEP; the
emulator accepts the defaults), the org from ``AEP_IMS_ORG_ID`` (default: the emulator's org).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from confluent_kafka import KafkaException, Producer

XDM_CONTENT_TYPE = "application/vnd.adobe.xed-full+json;version=1"
DEFAULT_SCHEMA_ID = "https://ns.adobe.com/aepprovider/schemas/example-experience-event"
DEFAULT_DATASET_ID = "aep-provider-example-dataset"
EMULATOR_IMS_ORG_ID = "0123456789ABCDEF01234567@AdobeOrg"  # aep_provider.emulator's default org
EVENT_TYPES = ("web.webpagedetails.pageViews", "commerce.productViews", "commerce.productListAdds")
CHANNELS = ("web", "mobile", "email", "store")
TENANT = "_aepprovider"
DEFAULT_INVALID_SHARE = 0.05


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict], None]:
    def change(entity: dict) -> None:
        node = entity
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return change


def _drop(key: str) -> Callable[[dict], None]:
    return lambda entity: entity.pop(key, None)


#: The seven ways an event breaks the example schema (issue 14): kind -> (change to the entity, JSON path).
INVALID_KINDS: dict[str, tuple[Callable[[dict], None], str]] = {
    "integer sent as a string": (_set((TENANT, "seq"), "42"), "/_aepprovider/seq"),
    "missing required timestamp": (_drop("timestamp"), "/timestamp"),
    "bad date-time": (_set(("timestamp",), "2026-13-45T25:61:00Z"), "/timestamp"),
    "enum value outside the list": (_set((TENANT, "channel"), "phone"), "/_aepprovider/channel"),
    "extraneous key": (_set(("couponCode",), "WINTER-26"), "/couponCode"),
    "string over maxLength": (_set((TENANT, "loyaltyTier"), "platinum-platinum-plus"), "/_aepprovider/loyaltyTier"),
    "negative seq below minimum": (_set((TENANT, "seq"), -7), "/_aepprovider/seq"),
}


def invalid_event(seq: int, kind: str, *, schema_id: str, dataset_id: str, ims_org_id: str) -> dict:
    """:func:`sample_event` broken in the way ``kind`` (a key of :data:`INVALID_KINDS`) says."""
    event = sample_event(seq, schema_id=schema_id, dataset_id=dataset_id, ims_org_id=ims_org_id)
    INVALID_KINDS[kind][0](event["body"]["xdmEntity"])
    return event


def is_invalid(seq: int, share: float) -> bool:
    """Whether event ``seq`` is one of the invalid ones: evenly spread, ``share`` of them."""
    return share > 0 and int((seq + 1) * share) > int(seq * share)


def sample_event(seq: int, *, schema_id: str, dataset_id: str, ims_org_id: str) -> dict:
    """One complete XDM streaming message (header + body.xdmMeta + body.xdmEntity).

    :param seq: sequence number, shows up in the page name so runs are easy to follow.
    """
    schema_ref = {"id": schema_id, "contentType": XDM_CONTENT_TYPE}
    return {
        "header": {
            "schemaRef": schema_ref,
            "imsOrgId": ims_org_id,
            "datasetId": dataset_id,
            "source": {"name": "aep-provider sample events"},
        },
        "body": {
            "xdmMeta": {"schemaRef": schema_ref},
            "xdmEntity": {
                "_id": str(uuid.uuid4()),
                "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "eventType": EVENT_TYPES[seq % len(EVENT_TYPES)],
                "web": {"webPageDetails": {"name": f"sample page {seq}"}},
                TENANT: {"channel": CHANNELS[seq % len(CHANNELS)], "seq": seq},
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.sample_events", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--topic", default="aep.events")
    parser.add_argument("--rate", type=float, default=2.0, help="events per second (default 2)")
    parser.add_argument(
        "--count", type=int, default=None, help="stop after this many events (default: run until stopped)"
    )
    parser.add_argument(
        "--invalid-share",
        type=float,
        default=DEFAULT_INVALID_SHARE,
        help=f"share of events that break the example schema, in turn of seven kinds (default {DEFAULT_INVALID_SHARE})",
    )
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be positive")
    if not 0 <= args.invalid_share <= 1:
        parser.error("--invalid-share must be between 0 and 1")
    schema_id = os.environ.get("AEP_SCHEMA_ID") or DEFAULT_SCHEMA_ID
    dataset_id = os.environ.get("AEP_DATASET_ID") or DEFAULT_DATASET_ID
    org = os.environ.get("AEP_IMS_ORG_ID") or EMULATOR_IMS_ORG_ID

    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 50, "message.timeout.ms": 30000})
    failures: list[str] = []

    def _delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    seq = invalid = 0
    kinds = list(INVALID_KINDS)
    next_at = time.monotonic()
    try:
        while not stopping and (args.count is None or seq < args.count):
            if is_invalid(seq, args.invalid_share):
                kind = kinds[invalid % len(kinds)]
                invalid += 1
                event = invalid_event(seq, kind, schema_id=schema_id, dataset_id=dataset_id, ims_org_id=org)
            else:
                event = sample_event(seq, schema_id=schema_id, dataset_id=dataset_id, ims_org_id=org)
            producer.produce(
                args.topic, json.dumps(event).encode(), key=event["body"]["xdmEntity"]["_id"], on_delivery=_delivered
            )
            seq += 1
            if args.count is None or seq < args.count:
                next_at += 1.0 / args.rate
                producer.poll(0)  # serve delivery reports; poll(timeout) would return early on one
                time.sleep(max(0.0, next_at - time.monotonic()))
    except KafkaException as exc:
        print(f"sample_events: error: {exc.args[0]}", file=sys.stderr)
        return 2
    finally:
        remaining = producer.flush(30)
    if failures or remaining:
        print(f"sample_events: error: {len(failures) + remaining} of {seq} events not delivered to "
              f"{args.topic} at {args.bootstrap}: {failures[:1]}", file=sys.stderr)  # fmt: skip
        return 2
    print(f"sample_events: produced {seq} events to {args.topic} ({invalid} of them invalid on purpose)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
