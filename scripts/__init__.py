"""Developer tooling: the local Kafka broker (``kafka_local``) and the local stack (``devstack``)."""
