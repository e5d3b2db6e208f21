"""``aep-emulator`` / ``python -m aep_provider.emulator``: run the AEP emulator in the foreground."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

from aep_provider.emulator.config import DEFAULT_CLIENT_SECRET, FAILURE_SHAPES, EmulatorConfig, EmulatorConfigError
from aep_provider.emulator.server import AEPEmulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aep-emulator",
        description="Local emulator of Adobe IMS (OAuth server-to-server) and AEP streaming inlets (DCS).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind, 0 = any free port (default 8765)")
    parser.add_argument("--config", metavar="FILE.json", help="EmulatorConfig as JSON (credentials, inlets, ...)")
    parser.add_argument("--token-ttl", type=int, metavar="SECONDS", help="expires_in of issued tokens")
    parser.add_argument("--failure-shape", choices=FAILURE_SHAPES, help="per-message failure entries in 207 answers")
    parser.add_argument("--record", metavar="FILE", help="append every accepted message to FILE as JSON lines")
    return parser


def _config(args: argparse.Namespace) -> EmulatorConfig:
    config = EmulatorConfig.from_file(args.config) if args.config else EmulatorConfig()
    overrides = {}
    if args.token_ttl is not None:
        overrides["token_ttl_seconds"] = args.token_ttl
    if args.failure_shape is not None:
        overrides["failure_shape"] = args.failure_shape
    if args.record is not None:
        overrides["record_path"] = args.record
    return replace(config, **overrides) if overrides else config


def _shown_secret(secret: str) -> str:
    """The default fake secret is printed so users can copy it; one they chose may be real, so it is not."""
    if secret == DEFAULT_CLIENT_SECRET:
        return f"{secret}   (the emulator's own fake credential)"
    return "(set in the config file; not shown)"


def _banner(emulator: AEPEmulator) -> str:
    config = emulator.config
    url = emulator.url
    lines = [
        f"AEP emulator listening on {url}",
        f"  IMS token endpoint : POST {url}/ims/token/v3",
        f"  client_id          : {config.client_id}",
        f"  client_secret      : {_shown_secret(config.client_secret)}",
        f"  IMS org            : {config.ims_org_id}",
    ]
    if config.required_scopes:
        lines.append(f"  required scopes    : {','.join(config.required_scopes)}")
    for inlet in config.inlets:
        auth = "authenticated" if inlet.authenticated else "no authentication"
        lines.append(
            f"  inlet              : {url}/collection/batch/{inlet.inlet_id}  (sandbox {inlet.sandbox_name}, {auth})"
        )
    for dataset in config.datasets:
        lines.append(f"  dataset            : {dataset.dataset_id}  (schema {dataset.schema_id})")
    lines.append(
        f"  Platform APIs      : GET {url}/data/foundation/{{catalog,schemaregistry,export}}/...  (platform_url)"
    )
    lines.append(f"  control            : {url}/emulator/{{health,stats,accepted,batches,faults,revoke-tokens,reset}}")
    if config.record_path:
        lines.append(f"  recording to       : {config.record_path}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM; exit 2 with one line on stderr for bad options or a busy port."""
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
        emulator = AEPEmulator(config, host=args.host, port=args.port)
    except (EmulatorConfigError, OSError) as err:
        print(f"aep-emulator: error: {err}", file=sys.stderr)
        return 2
    try:
        emulator.start()
    except EmulatorConfigError as err:
        print(f"aep-emulator: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            reason = f"port {args.port} on {args.host} is already in use; pick another with --port (0 = any free port)"
        else:
            reason = f"cannot listen on {args.host}:{args.port}: {err.strerror or err}"
        print(f"aep-emulator: error: {reason}", file=sys.stderr)
        return 2

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too, explicitly: a process started from a background job (a CI script, `&`) inherits
    # SIGINT as ignored, and Python then installs no KeyboardInterrupt handler of its own.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    try:
        # Inside the try: a signal can arrive while the banner is still being written (a caller
        # that read the "control" line may stop the emulator at once).
        print(_banner(emulator), flush=True)
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    print("AEP emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
