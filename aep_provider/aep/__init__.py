"""Plain-Python client for Adobe IMS and AEP streaming inlets (no Airflow imports).

The Airflow hook (:mod:`aep_provider.hooks.aep`) builds these objects from a connection;
the engine (:mod:`aep_provider.engine`) only sees :class:`~aep_provider.aep.results.BatchResult`.
"""

from __future__ import annotations
