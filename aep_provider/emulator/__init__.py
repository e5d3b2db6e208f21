"""
A local stand-in for Adobe Experience Platform's IMS token endpoint and DCS streaming inlets.

Run it in-process (``with AEPEmulator() as emu: ...``) or as ``aep-emulator`` /
``python -m aep_provider.emulator``; drive a running one from another process with
:class:`RemoteEmulator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aep_provider.emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_IMS_ORG_ID,
    DEFAULT_INLET_ID,
    DEFAULT_SANDBOX,
    DEFAULT_TOKEN_TTL_SECONDS,
    MAX_BODY_BYTES,
    EmulatorConfig,
    EmulatorConfigError,
    Fault,
    InletConfig,
)
from aep_provider.emulator.server import AEPEmulator

if TYPE_CHECKING:
    from aep_provider.emulator.remote import RemoteEmulator


def __getattr__(name: str) -> object:
    # RemoteEmulator needs `requests`; the server does not, so `aep-emulator` starts faster.
    if name == "RemoteEmulator":
        from aep_provider.emulator.remote import RemoteEmulator

        return RemoteEmulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_IMS_ORG_ID",
    "DEFAULT_INLET_ID",
    "DEFAULT_SANDBOX",
    "DEFAULT_TOKEN_TTL_SECONDS",
    "MAX_BODY_BYTES",
    "AEPEmulator",
    "EmulatorConfig",
    "EmulatorConfigError",
    "Fault",
    "InletConfig",
    "RemoteEmulator",
]
