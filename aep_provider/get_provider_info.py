"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

# The adobe_aep connection's form fields come from the one declaration of its options.
from aep_provider.aep.options import conn_fields, ui_field_behaviour


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-aep",
        "name": "Adobe Experience Platform",
        "description": "Drain Apache Kafka topics into Adobe Experience Platform streaming ingestion.",
        "integrations": [
            {
                "integration-name": "Adobe Experience Platform",
                "external-doc-url": "https://experienceleague.adobe.com/docs/experience-platform/ingestion/streaming/overview.html",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": "Adobe Experience Platform", "python-modules": ["aep_provider.hooks.aep"]},
        ],
        "operators": [
            {
                "integration-name": "Adobe Experience Platform",
                "python-modules": ["aep_provider.operators.kafka_to_aep"],
            },
        ],
        "sensors": [
            {
                "integration-name": "Adobe Experience Platform",
                "python-modules": ["aep_provider.sensors.kafka_lag"],
            },
        ],
        "triggers": [
            {
                "integration-name": "Adobe Experience Platform",
                "python-modules": ["aep_provider.triggers.kafka_lag"],
            },
        ],
        "extra-links": ["aep_provider.links.aep.AEPDatasetLink"],
        "asset-uris": [
            {
                "schemes": ["aep"],
                "handler": "aep_provider.assets.aep.sanitize_uri",
                "factory": "aep_provider.assets.aep.create_asset",
                "to_openlineage_converter": "aep_provider.assets.aep.convert_asset_to_openlineage",
            }
        ],
        # The deliveries history tables, created and migrated by `airflow db migrate`.
        "db-managers": ["aep_provider.history.db.HistoryDBManager"],
        # Also registered through the `airflow.plugins` entry point, which Airflow always reads;
        # this key is read only with [core] lazy_discover_providers = False.
        "plugins": [{"name": "aep_provider", "plugin-class": "aep_provider.ui.plugin.AEPDeliveriesPlugin"}],
        "connection-types": [
            {
                "connection-type": "adobe_aep",
                "hook-class-name": "aep_provider.hooks.aep.AEPStreamingHook",
                "hook-name": "Adobe Experience Platform (streaming)",
                "ui-field-behaviour": ui_field_behaviour(),
                "conn-fields": conn_fields(),
            }
        ],
    }
