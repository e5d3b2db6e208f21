"""Inspect and steer an emulator running in another process, over its /emulator/ HTTP API."""

from __future__ import annotations

from typing import Any

import requests

from aep_provider.emulator.config import Fault


class RemoteEmulator:
    """
    The inspection/control half of :class:`AEPEmulator`, for one started with the CLI.

    :param url: the emulator's base URL, e.g. ``http://127.0.0.1:8765``.
    :param timeout: seconds per control request.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"RemoteEmulator(url={self.url!r})"

    def _call(self, method: str, action: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        response = self._session.request(method, f"{self.url}/emulator/{action}", **kwargs)
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def accepted(self, inlet_id: str | None = None) -> list[dict[str, Any]]:
        return [entry["message"] for entry in self.received(inlet_id)]

    def received(
        self, inlet_id: str | None = None, since_ms: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        params = {"inlet": inlet_id, "since": since_ms, "limit": limit}
        return self._call("GET", "accepted", params={k: v for k, v in params.items() if v is not None})["messages"]

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def batches(self, status: str | None = None, wait: float = 0.0) -> dict[str, dict[str, Any]]:
        """Catalog batches of accepted messages; ``wait`` seconds at most for validation to finish first."""
        params: dict[str, Any] = {"wait": wait}
        if status:
            params["status"] = status
        return self._call("GET", "batches", params=params, timeout=self.timeout + wait)["batches"]

    def inject(self, fault: Fault) -> None:
        self._call("POST", "faults", json=fault.to_dict())

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")["faults"]

    def revoke_tokens(self) -> None:
        self._call("POST", "revoke-tokens")

    def reset(self) -> None:
        self._call("POST", "reset")

    def close(self) -> None:
        self._session.close()
