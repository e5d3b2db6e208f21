"""Apache Airflow provider: Apache Kafka to Adobe Experience Platform streaming ingestion."""

from __future__ import annotations

__version__ = "0.1.0"
