"""No client secret or access token in logs (DEBUG, urllib3 included), exceptions or reprs."""

from __future__ import annotations

import logging

import pytest

from aep_provider.aep import AEPAuthError, AEPError
from aep_provider.emulator import AEPEmulator, EmulatorConfig, Fault
from tests.aep.support import client_for, settings_for, xdm

pytestmark = pytest.mark.integration

SECRET = "Sup3r&secret+value=XYZ"


def test_secrets_and_tokens_never_show(caplog, capfd):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "aep_provider"):
        caplog.set_level(logging.DEBUG, logger=name)
    tokens: list[str] = []
    texts: list[str] = []
    with AEPEmulator(EmulatorConfig(client_secret=SECRET)) as emulator:
        client = client_for(emulator.url, client_secret=SECRET, on_token=tokens.append)
        emulator.inject(Fault(status=401, count=1, endpoint="batch"))
        emulator.inject(Fault(status=503, count=1, endpoint="batch"))
        emulator.inject(Fault(endpoint="batch", count=1, reject_indexes=(0,), message_status=500))
        assert client.send_batch([xdm("a"), xdm("b")]).accepted == 2
        emulator.inject(Fault(status=401, count=None, endpoint="batch"))
        with pytest.raises(AEPAuthError) as auth_error:
            client.send_batch([xdm("c")])
        texts += [str(auth_error.value), repr(auth_error.value)]
        for bad in (SECRET + "x", SECRET[:-1]):
            with pytest.raises(AEPError) as info:
                client_for(emulator.url, client_secret=bad).send_batch([xdm("d")])
            texts += [str(info.value), repr(info.value)]
        texts += [repr(client), repr(client.auth), repr(settings_for(emulator.url, client_secret=SECRET))]
    out, err = capfd.readouterr()
    texts += [caplog.text, out, err]
    assert len(tokens) == 3  # first, renewed after the 401 fault, renewed again before failing
    assert "POST /collection/batch/emulator-inlet" in caplog.text  # urllib3 DEBUG really was captured
    everything = "\n".join(texts)
    for secret in [SECRET, SECRET[:-1], *tokens]:
        assert secret not in everything
