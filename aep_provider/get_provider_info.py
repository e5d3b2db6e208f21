"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

_NULLABLE_STRING = {"type": ["string", "null"]}

# Extras of the adobe_aep connection form; values land in the connection's extra under these names.
_AEP_CONN_FIELDS: dict[str, Any] = {
    "inlet_id": {
        "label": "Inlet ID",
        "description": "Streaming inlet (connection) id: the last part of the inlet URL. Required.",
        "schema": _NULLABLE_STRING,
    },
    "ims_org_id": {
        "label": "IMS org ID",
        "description": "Your organisation id, ending in @AdobeOrg (sent as x-gw-ims-org-id).",
        "schema": _NULLABLE_STRING,
    },
    "sandbox_name": {
        "label": "Sandbox name",
        "description": "Sandbox of the inlet (sent lower-cased as x-sandbox-name).",
        "schema": {"type": ["string", "null"], "default": "prod"},
    },
    "auth": {
        "label": "Authentication",
        "description": "oauth: OAuth Server-to-Server via IMS (client id/secret); token: a static access "
        "token; none: inlet created with authentication off.",
        "schema": {"type": ["string", "null"], "default": "oauth", "enum": ["oauth", "token", "none"]},
    },
    "ims_url": {
        "label": "IMS URL",
        "description": "Adobe IMS base URL; the token is requested from {ims_url}/ims/token/v3.",
        "schema": {"type": ["string", "null"], "default": "https://ims-na1.adobelogin.com"},
    },
    "scopes": {
        "label": "Scopes",
        "description": "Comma-separated IMS scopes.",
        "schema": {
            "type": ["string", "null"],
            "default": "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session",
        },
    },
    "access_token": {
        "label": "Access token",
        "description": "Static bearer token for auth 'token' (expires; no renewal).",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "flow_id": {
        "label": "Flow ID",
        "description": "Sent as x-adobe-flow-id (HTTP API source dataflows).",
        "schema": _NULLABLE_STRING,
    },
    "timeout": {
        "label": "Timeout (s)",
        "description": "Connect and read timeout of each request, in seconds "
        "(default: 10 to connect, 30 to read).",
        "schema": {"type": ["number", "null"]},
    },
    "verify": {
        "label": "Verify TLS",
        "description": "Verify TLS certificates (a CA bundle path may be set in the extra JSON instead).",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "proxy": {
        "label": "Proxy URL",
        "description": "HTTP(S) proxy for IMS and inlet calls, e.g. http://proxy:3128.",
        "schema": _NULLABLE_STRING,
    },
    "retry_deadline_seconds": {
        "label": "Retry deadline (s)",
        "description": "Total time one send may spend retrying 429/5xx/network errors.",
        "schema": {"type": ["number", "null"], "default": 120},
    },
    "max_attempts": {
        "label": "Max attempts",
        "description": "Most requests one send may make, the first included.",
        "schema": {"type": ["integer", "null"], "default": 8},
    },
    "backoff_base_seconds": {
        "label": "Backoff base (s)",
        "description": "First backoff ceiling; doubles each retry, with full jitter below it. Retry-After wins.",
        "schema": {"type": ["number", "null"], "default": 0.5},
    },
    "backoff_max_seconds": {
        "label": "Backoff max (s)",
        "description": "Longest single backoff between retries.",
        "schema": {"type": ["number", "null"], "default": 30},
    },
    "max_requests_per_second": {
        "label": "Max requests/s",
        "description": "Client-side request rate limit (AEP guardrail 1,000/s per org); 0 switches it off.",
        "schema": {"type": ["number", "null"], "default": 1000},
    },
    "max_messages_per_second": {
        "label": "Max messages/s",
        "description": "Client-side message rate limit (AEP guardrail 10,000/s per org); 0 switches it off.",
        "schema": {"type": ["number", "null"], "default": 10000},
    },
    "pool_size": {
        "label": "Connection pool size",
        "description": "Pooled HTTP connections: the number of threads sending at once.",
        "schema": {"type": ["integer", "null"], "default": 10},
    },
}


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
        "connection-types": [
            {
                "connection-type": "adobe_aep",
                "hook-class-name": "aep_provider.hooks.aep.AEPStreamingHook",
                "hook-name": "Adobe Experience Platform (streaming)",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "Inlet URL", "login": "Client ID", "password": "Client secret"},
                    "placeholders": {
                        "host": "https://dcs.adobedc.net",
                        "login": "OAuth Server-to-Server client id (Adobe Developer Console)",
                        "password": "OAuth Server-to-Server client secret",
                        "inlet_id": "streaming inlet id (the end of the inlet URL)",
                        "ims_org_id": "0123456789ABCDEF01234567@AdobeOrg",
                        "sandbox_name": "prod",
                        "ims_url": "https://ims-na1.adobelogin.com",
                    },
                },
                "conn-fields": _AEP_CONN_FIELDS,
            }
        ],
    }
