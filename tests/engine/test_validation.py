"""engine/validation.py with the emulator's Catalog and Schema Registry: what fails a run, what rejects a record."""

from __future__ import annotations

import pytest

from aep_provider.aep.xdm import XDMViolation
from aep_provider.emulator import Fault
from aep_provider.emulator.config import EXAMPLE_DATASET_ID, EXAMPLE_SCHEMA_ID
from aep_provider.engine.validation import SchemaSource, SchemaValidators, ValidationSetupError
from tests.aep.support import platform_for

pytestmark = pytest.mark.integration


def test_a_schema_id_that_is_not_the_datasets_fails_naming_both(aep_emulator):
    with pytest.raises(ValidationSetupError) as info:
        SchemaSource(platform_for(aep_emulator.url)).dataset_schema(
            EXAMPLE_DATASET_ID, "https://ns.adobe.com/x/schemas/y"
        )
    text = str(info.value)
    assert EXAMPLE_SCHEMA_ID in text and "https://ns.adobe.com/x/schemas/y" in text and "validate_xdm=False" in text
    assert not info.value.retryable


def test_an_unknown_dataset_fails_without_retries_and_an_outage_with(aep_emulator):
    source = SchemaSource(platform_for(aep_emulator.url, max_attempts=2))
    with pytest.raises(ValidationSetupError) as missing:
        source.dataset_schema("no-such-dataset")
    assert "no-such-dataset" in str(missing.value) and not missing.value.retryable
    aep_emulator.inject(Fault(status=503, endpoint="schemas", count=None))
    with pytest.raises(ValidationSetupError) as down:
        source.dataset_schema(EXAMPLE_DATASET_ID)
    assert down.value.retryable and "kept failing" in str(down.value)


def test_validators_read_each_schema_once_and_remember_what_failed(aep_emulator):
    source = SchemaSource(platform_for(aep_emulator.url))
    validators = SchemaValidators(source.schema)
    message = {"header": {"schemaRef": {"id": EXAMPLE_SCHEMA_ID}}, "body": {"xdmEntity": {"_id": "x"}}}
    for _ in range(3):
        with pytest.raises(XDMViolation, match="/timestamp: required field is missing"):
            validators.check_message(message)
    gone = {"header": {"schemaRef": {"id": "https://ns.adobe.com/gone"}}, "body": {"xdmEntity": {}}}
    for _ in range(2):
        with pytest.raises(XDMViolation, match="not in the Schema Registry"):
            validators.check_message(gone)
    assert source.fetched == [EXAMPLE_SCHEMA_ID, "https://ns.adobe.com/gone"]
    assert validators.schemas() == [{"id": EXAMPLE_SCHEMA_ID, "version": "1.3"}]
    # Messages without a schema reference or an entity are left to AEP's envelope checks.
    validators.check_message({"header": {}, "body": {"xdmEntity": {}}})
    validators.check_message({"header": {"schemaRef": {"id": EXAMPLE_SCHEMA_ID}}, "body": {}})
