"""Run one drain in a child process (``python -m tests.engine.drain_child '<json>'``) so a test can SIGKILL it."""

from __future__ import annotations

import json
import sys

from aep_provider.engine import DrainConfig, DrainEngine
from tests.engine.support import inlet_client


class _EmulatorAt:
    """Just enough of an emulator for :func:`inlet_client`: its URL."""

    def __init__(self, url: str) -> None:
        self.url = url


def main(argv: list[str]) -> None:
    args = json.loads(argv[0])
    client = inlet_client(_EmulatorAt(args["emulator_url"]))  # type: ignore[arg-type]
    DrainEngine(
        consumer_conf=args["consumer_conf"],
        topics=[args["topic"]],
        sender=client,
        config=DrainConfig(**args["config"]),
    ).run()


if __name__ == "__main__":
    main(sys.argv[1:])
