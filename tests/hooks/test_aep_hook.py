"""AEPStreamingHook: connection -> client, overrides, clear errors, secret masking."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from airflow.sdk.log import redact

from aep_provider.aep import AEPConfigError, AEPUnavailableError, InletClient, Outcome
from aep_provider.emulator import AEPEmulator, EmulatorConfig, Fault, InletConfig
from aep_provider.hooks.aep import AEPStreamingHook
from tests.aep.support import FAST, accepted_ids, closed_port, xdm

pytestmark = pytest.mark.integration

FAST_EXTRAS = {**FAST, "timeout": list(FAST["timeout"])}


def test_connection_fixture_drives_a_working_client(aep_emulator, aep_conn_id):
    hook = AEPStreamingHook(aep_conn_id)
    ok, message = hook.test_connection()
    assert ok, message
    assert "reachable and authorised" in message
    assert hook.ims_org_id == "0123456789ABCDEF01234567@AdobeOrg"
    client = hook.get_client()
    assert isinstance(client, InletClient) and hook.get_client() is client
    result = hook.send_batch([xdm("a"), xdm("b")])
    assert [r.outcome for r in result.results] == [Outcome.ACCEPTED] * 2
    assert accepted_ids(aep_emulator) == ["a", "b"]
    # test_connection posted an empty batch: nothing was ingested by it.
    assert aep_emulator.stats()["messages_accepted"] == 2
    hook.close()
    assert hook.send_batch([xdm("c")]).accepted == 1  # usable again after close


def test_init_touches_nothing():
    # No connection lookup, no network: failures wait for first use.
    hook = AEPStreamingHook("no_such_connection_anywhere", inlet_id="x")
    assert hook.aep_conn_id == "no_such_connection_anywhere"


def test_constructor_overrides_win_over_extras(aep_emulator, make_aep_conn):
    conn_id = make_aep_conn(aep_emulator.url, inlet_id="not-this-one", max_attempts=8)
    hook = AEPStreamingHook(conn_id, inlet_id="emulator-inlet", max_attempts="2", retry_deadline_seconds=3)
    assert hook.settings.inlet_id == "emulator-inlet"
    assert hook.settings.max_attempts == 2
    aep_emulator.inject(Fault(status=503, count=None, endpoint="batch"))
    with pytest.raises(AEPUnavailableError, match=r"2 attempt\(s\)"):
        hook.send_batch([xdm("a")])


def test_auth_none_connection(make_aep_conn):
    with AEPEmulator(EmulatorConfig(inlets=(InletConfig(authenticated=False),))) as emulator:
        hook = AEPStreamingHook(make_aep_conn(emulator.url, auth="none", client_id="", client_secret=""))
        assert hook.test_connection()[0]
        assert hook.send_batch([xdm("a")]).accepted == 1
        assert emulator.stats()["tokens_issued"] == 0


def test_missing_inlet_id_names_the_connection_and_the_extra(aep_emulator, make_aep_conn):
    conn_id = make_aep_conn(aep_emulator.url, inlet_id=None)
    with pytest.raises(
        AEPConfigError, match=f"Connection '{conn_id}' has no streaming inlet id: set the 'inlet_id' extra"
    ):
        AEPStreamingHook(conn_id).get_client()
    ok, message = AEPStreamingHook(conn_id).test_connection()
    assert not ok and "inlet_id" in message


@pytest.mark.parametrize("host", ["dcs.adobedc.net", "https://", "https://dcs.adobedc.net:abc"])
def test_malformed_inlet_url_is_one_clear_error(make_aep_conn, host):
    conn_id = make_aep_conn("http://127.0.0.1:9", host=host)
    with pytest.raises(
        AEPConfigError, match=f"Connection '{conn_id}': inlet URL .host.*(scheme and a host|invalid port)"
    ):
        AEPStreamingHook(conn_id).get_client()


def test_empty_host_defaults_to_adobe_dcs(make_aep_conn):
    hook = AEPStreamingHook(make_aep_conn("http://127.0.0.1:9", host=""))
    assert hook.get_client().batch_url == "https://dcs.adobedc.net/collection/batch/emulator-inlet"


def test_wrong_credentials_fail_test_connection_clearly(aep_emulator, make_aep_conn):
    ok, message = AEPStreamingHook(make_aep_conn(aep_emulator.url, client_secret="wrong-secret-123")).test_connection()
    assert not ok
    assert f"{aep_emulator.url}/ims/token/v3" in message and "invalid_client" in message
    assert "wrong-secret-123" not in message


def test_unreachable_inlet_fails_test_connection(make_aep_conn):
    url = f"http://127.0.0.1:{closed_port()}"
    conn_id = make_aep_conn(url, auth="none", **FAST_EXTRAS)
    ok, message = AEPStreamingHook(conn_id).test_connection()
    assert not ok
    assert f"{url}/collection/batch/emulator-inlet" in message


def test_unknown_inlet_fails_test_connection(aep_emulator, make_aep_conn):
    ok, message = AEPStreamingHook(make_aep_conn(aep_emulator.url, inlet_id="missing")).test_connection()
    assert not ok and "HTTP 404" in message


def test_unknown_constructor_option_is_rejected():
    with pytest.raises(AEPConfigError, match="unknown option.s. inlet"):
        AEPStreamingHook("aep_default", inlet="x")


def test_unknown_extras_are_ignored_with_a_warning(aep_emulator, make_aep_conn, caplog, capfd):
    conn_id = make_aep_conn(aep_emulator.url, colour="blue")
    caplog.set_level(logging.WARNING)
    assert AEPStreamingHook(conn_id).settings.inlet_id == "emulator-inlet"
    out, err = capfd.readouterr()
    assert "ignoring unknown extra 'colour'" in caplog.text + out + err


def test_secrets_are_masked_and_never_printed(aep_emulator, make_aep_conn, caplog, capfd, monkeypatch):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    secret = "aep-emulator-secret"
    minted: list[str] = []
    conn_id = make_aep_conn(aep_emulator.url, access_token="static-token-value-42", proxy=None)
    hook = AEPStreamingHook(conn_id)
    client = hook.get_client()
    # Spy on tokens handed to the masker, keeping the real masking.
    real = client.auth._on_token
    client.auth._on_token = lambda token: (minted.append(token), real(token))
    assert hook.test_connection()[0]
    aep_emulator.revoke_tokens()
    assert hook.send_batch([xdm("a")]).accepted == 1
    assert len(minted) == 2
    for value in [secret, "static-token-value-42", *minted]:
        assert redact(f"before {value} after") == "before *** after"
    out, err = capfd.readouterr()
    everything = "\n".join([caplog.text, out, err, repr(hook), repr(client), repr(hook.settings)])
    for value in [secret, "static-token-value-42", *minted]:
        assert value not in everything


def test_port_field(aep_emulator, monkeypatch):
    host, port = aep_emulator.url.rsplit(":", 1)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AEP_LEGACY",
        json.dumps(
            {
                "conn_type": "adobe_aep",
                "host": host,
                "port": int(port),
                "login": "aep-emulator-client",
                "password": "aep-emulator-secret",
                "extra": {
                    "inlet_id": "emulator-inlet",
                    "ims_org_id": "0123456789ABCDEF01234567@AdobeOrg",
                    "ims_url": aep_emulator.url,
                },
            }
        ),
    )
    hook = AEPStreamingHook("aep_legacy")
    assert hook.get_client().base_url == aep_emulator.url
    assert hook.send_batch([xdm("a")]).accepted == 1


def test_threads_share_one_client(aep_emulator, aep_conn_id):
    hook = AEPStreamingHook(aep_conn_id)
    clients: list[InletClient] = []
    threads = [threading.Thread(target=lambda: clients.append(hook.get_client())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(clients) == 8 and len({id(c) for c in clients}) == 1
