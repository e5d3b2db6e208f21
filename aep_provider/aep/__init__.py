"""Plain-Python client for Adobe IMS and AEP streaming inlets (no Airflow imports).

The Airflow hook (:mod:`aep_provider.hooks.aep`) builds these objects from a connection;
the engine (:mod:`aep_provider.engine`) only sees :class:`~aep_provider.aep.results.BatchResult`.
"""

from __future__ import annotations

from aep_provider.aep.errors import AEPAuthError, AEPConfigError, AEPError, AEPRequestError, AEPUnavailableError
from aep_provider.aep.ims import DEFAULT_IMS_URL, DEFAULT_SCOPES, IMSTokenProvider, NoAuth, StaticToken
from aep_provider.aep.inlet import DEFAULT_INLET_URL, InletClient, build_batch_body
from aep_provider.aep.ratelimit import RateLimiter
from aep_provider.aep.results import MAX_REQUEST_BYTES, BatchResult, MessageResult, Outcome, batch_body_size
from aep_provider.aep.retry import RetryPolicy
from aep_provider.aep.settings import AEPSettings

__all__ = [
    "DEFAULT_IMS_URL",
    "DEFAULT_INLET_URL",
    "DEFAULT_SCOPES",
    "MAX_REQUEST_BYTES",
    "AEPAuthError",
    "AEPConfigError",
    "AEPError",
    "AEPRequestError",
    "AEPSettings",
    "AEPUnavailableError",
    "BatchResult",
    "IMSTokenProvider",
    "InletClient",
    "MessageResult",
    "NoAuth",
    "Outcome",
    "RateLimiter",
    "RetryPolicy",
    "StaticToken",
    "batch_body_size",
    "build_batch_body",
]
