"""Kafka helpers outside the drain engine: offsets-only lag reading and connection configuration."""
