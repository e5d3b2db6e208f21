"""Unreachable or vanishing endpoints end in one clear error, within the (short) deadline."""

from __future__ import annotations

import pytest

from aep_provider.aep import AEPUnavailableError
from aep_provider.emulator import AEPEmulator, EmulatorConfig, InletConfig
from tests.aep.support import client_for, closed_port, xdm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def test_unreachable_inlet_fails_naming_the_url():
    url = f"http://127.0.0.1:{closed_port()}"
    client = client_for(url, auth="none", max_attempts=3)
    with pytest.raises(AEPUnavailableError) as info:
        client.send_batch([xdm("a")])
    text = str(info.value)
    assert f"{url}/collection/batch/emulator-inlet" in text
    assert "ConnectionError" in text and "3 attempt(s)" in text


def test_emulator_down_past_the_deadline():
    emulator = AEPEmulator(EmulatorConfig(inlets=(InletConfig(authenticated=False),))).start()
    client = client_for(emulator.url, auth="none", retry_deadline_seconds=1.0, max_attempts=100, backoff_max_seconds=0.2)
    assert client.send_batch([xdm("a")]).accepted == 1
    emulator.stop()
    with pytest.raises(AEPUnavailableError, match="kept failing") as info:
        client.send_batch([xdm("b")])
    # The deadline, not the attempt count, ended it.
    assert "100 attempts, 1s" in str(info.value)
