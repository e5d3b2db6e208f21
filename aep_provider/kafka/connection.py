"""The ``kafka`` connection's client settings, built the way the apache-kafka provider builds them."""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook


def kafka_connection_config(kafka_config_id: str) -> dict[str, Any]:
    """
    The confluent-kafka settings of an Airflow ``kafka`` connection.

    Built by the apache-kafka provider's :class:`KafkaBaseHook`, so what it supports applies
    here too: dotted-path callbacks in the extra (``oauth_cb``, ``error_cb``, ...) are resolved
    when listed in ``[apache_kafka] callback_allowlist`` (and refused otherwise), and managed
    clusters get their token callback (Amazon MSK IAM with ``sasl.mechanism=OAUTHBEARER``,
    Google Managed Kafka). A refused callback raises ``ValueError``; a connection without
    ``bootstrap.servers`` comes back as it is (the caller reports it).

    :param kafka_config_id: the Airflow connection id.
    """
    hook = KafkaBaseHook(kafka_config_id=kafka_config_id)
    try:
        # _build_config is the provider's single place for this (its get_conn and test_connection
        # use it); calling it, rather than copying it, keeps callback and managed-cluster rules in step.
        return dict(hook._build_config())
    except ValueError as err:
        if "bootstrap.servers" not in str(err):
            raise
        # Callbacks are resolved before this check: only the address is missing. The caller's own
        # check names the connection and shows an example extra.
        return dict(hook.get_connection(kafka_config_id).extra_dejson)
