"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


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
        # Filled in by the hook's issue: ui-field-behaviour and declarative conn-fields.
        "connection-types": [
            {
                "connection-type": "adobe_aep",
                "hook-class-name": "aep_provider.hooks.aep.AEPStreamingHook",
                "hook-name": "Adobe Experience Platform (streaming)",
            }
        ],
    }
