"""EmulatorConfig / InletConfig / Fault validation: one clear error naming the bad field."""

from __future__ import annotations

import json

import pytest

from aep_provider.emulator import EmulatorConfig, EmulatorConfigError, Fault, InletConfig


def test_defaults_serve_one_authenticated_inlet():
    config = EmulatorConfig()
    inlet = config.inlet("emulator-inlet")
    assert inlet is not None and inlet.authenticated and inlet.sandbox_name == "prod"
    assert config.inlet_org(inlet) == "0123456789ABCDEF01234567@AdobeOrg"
    assert config.inlet("other") is None


def test_from_dict_builds_inlets_and_scopes():
    config = EmulatorConfig.from_dict(
        {
            "client_id": "c",
            "client_secret": "s&+=",
            "required_scopes": "openid,AdobeID",
            "token_ttl_seconds": 5,
            "failure_shape": "live",
            "inlets": [{"inlet_id": "a"}, {"inlet_id": "b", "authenticated": False, "max_requests_per_second": 3}],
        }
    )
    assert config.required_scopes == ("openid", "AdobeID")
    assert config.inlet("b") == InletConfig(inlet_id="b", authenticated=False, max_requests_per_second=3)
    assert config.failure_shape == "live"


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"failure_shape": "xml"}, "failure_shape"),
        ({"token_ttl_seconds": 0}, "token_ttl_seconds"),
        ({"token_ttl_seconds": "60"}, "token_ttl_seconds"),
        ({"auth_failure_status": 500}, "auth_failure_status"),
        ({"client_secret": ""}, "client_secret"),
        ({"colour": "red"}, "colour"),
        ({"inlets": [{"inlet_id": "a"}, {"inlet_id": "a"}]}, "unique"),
        ({"inlets": [{"inlet": "a"}]}, "inlet"),
        ({"inlets": [{"inlet_id": "a/b"}]}, "inlet_id"),
        ({"inlets": [{"max_requests_per_second": 0}]}, "max_requests_per_second"),
        ({"inlets": "a"}, "inlets"),
    ],
)
def test_bad_config_names_the_field(data, names):
    with pytest.raises(EmulatorConfigError, match=names):
        EmulatorConfig.from_dict(data)


def test_from_file_reports_json_errors_with_position(tmp_path):
    path = tmp_path / "emu.json"
    path.write_text('{"token_ttl_seconds": 5,}')
    with pytest.raises(EmulatorConfigError, match=r"emu.json is not valid JSON: .* line 1"):
        EmulatorConfig.from_file(path)
    with pytest.raises(EmulatorConfigError, match="cannot read config file"):
        EmulatorConfig.from_file(tmp_path / "missing.json")
    path.write_text(json.dumps({"token_ttl_seconds": 7}))
    assert EmulatorConfig.from_file(path).token_ttl_seconds == 7


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"endpoint": "batches"}, "endpoint"),
        ({"count": 0}, "count"),
        ({"status": 1000}, "status"),
        ({"delay_seconds": -1}, "delay_seconds"),
    ],
)
def test_bad_fault_names_the_field(kwargs, names):
    with pytest.raises(EmulatorConfigError, match=names):
        Fault(**kwargs)


def test_fault_round_trips_through_dict():
    fault = Fault(status=503, count=None, endpoint="batch", retry_after=2, reject_indexes=(1, 3))
    assert Fault.from_dict(json.loads(json.dumps(fault.to_dict()))) == fault
    with pytest.raises(EmulatorConfigError, match="unknown fault key"):
        Fault.from_dict({"stauts": 503})


def test_fault_matches_endpoint_and_inlet():
    assert Fault(endpoint="any").matches("token", None)
    assert Fault(endpoint="batch").matches("batch", "x")
    assert not Fault(endpoint="batch").matches("single", "x")
    assert not Fault(inlet_id="y").matches("batch", "x")
