"""
The ``aep://`` Asset URI scheme, registered in the provider info (``asset-uris``).

Form: ``aep://{org}/{sandbox}/datasets/{dataset_id}`` for an AEP dataset, or
``aep://{org}/{sandbox}/inlets/{inlet_id}`` for a streaming inlet when the dataset is not known
(passthrough messages name their dataset themselves). ``{org}`` is the IMS org id without its
``@AdobeOrg`` suffix (an ``@`` would read as user info in a URI); ``{sandbox}`` is lower case.
The OpenLineage dataset for the same target has namespace ``aep://{org}/{sandbox}`` and name
``datasets/{dataset_id}`` (or ``inlets/{inlet_id}``): the URI is namespace + ``/`` + name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, quote, urlsplit

from airflow.sdk import Asset

if TYPE_CHECKING:
    from openlineage.client.event_v2 import Dataset as OpenLineageDataset

SCHEME = "aep"
KINDS = ("datasets", "inlets")
_ORG_SUFFIX = "@adobeorg"


def org_key(ims_org_id: str) -> str:
    """The org as it appears in URIs and namespaces: ``ABC123@AdobeOrg`` → ``ABC123``."""
    org = ims_org_id.strip()
    return org[: -len(_ORG_SUFFIX)] if org.lower().endswith(_ORG_SUFFIX) else org


def namespace(ims_org_id: str, sandbox: str) -> str:
    """The OpenLineage namespace of an org's sandbox: ``aep://{org}/{sandbox}``."""
    return f"{SCHEME}://{org_key(ims_org_id)}/{sandbox.lower()}"


def dataset_name(*, dataset_id: str | None = None, inlet_id: str | None = None) -> str:
    """The OpenLineage name within the namespace: ``datasets/{id}``, else ``inlets/{id}``."""
    if dataset_id:
        return f"datasets/{quote(dataset_id, safe='')}"
    if inlet_id:
        return f"inlets/{quote(inlet_id, safe='')}"
    raise ValueError("an AEP target needs a dataset id or an inlet id")


def asset_uri(
    *, ims_org_id: str, sandbox: str = "prod", dataset_id: str | None = None, inlet_id: str | None = None
) -> str:
    """The Asset URI of an AEP dataset (or inlet); see the module docstring."""
    return f"{namespace(ims_org_id, sandbox)}/{dataset_name(dataset_id=dataset_id, inlet_id=inlet_id)}"


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Check (and normalise) an ``aep://`` URI for Airflow: org, sandbox, ``datasets``/``inlets``, id."""
    netloc = uri.netloc
    if "@" in netloc:  # "ORG@AdobeOrg" pasted whole: urlsplit reads "ORG" as user info
        user, _, host = netloc.rpartition("@")
        if host.lower() != _ORG_SUFFIX[1:]:
            raise ValueError(
                f"aep:// URI has an unexpected '@' in {netloc!r}; use aep://<org id>/<sandbox>/datasets/<id>"
            )
        netloc = user
    if not netloc:
        raise ValueError("aep:// URI must name the IMS org: aep://<org id>/<sandbox>/datasets/<dataset id>")
    parts = [p for p in uri.path.split("/") if p]
    if len(parts) != 3 or parts[1] not in KINDS:
        raise ValueError(
            "aep:// URI must be aep://<org id>/<sandbox>/datasets/<dataset id> or "
            f"aep://<org id>/<sandbox>/inlets/<inlet id>, got path {uri.path!r}"
        )
    return uri._replace(netloc=netloc, path=f"/{parts[0].lower()}/{parts[1]}/{parts[2]}")


def create_asset(
    *,
    ims_org_id: str,
    sandbox: str = "prod",
    dataset_id: str | None = None,
    inlet_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Asset:
    """An :class:`~airflow.sdk.Asset` for an AEP dataset (or inlet)."""
    uri = asset_uri(ims_org_id=ims_org_id, sandbox=sandbox, dataset_id=dataset_id, inlet_id=inlet_id)
    return Asset(uri=uri, extra=extra or {})


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> OpenLineageDataset:
    """The OpenLineage dataset of an ``aep://`` Asset (same naming as the operator's facets)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parsed = urlsplit(asset.uri)
    sandbox, _, name = parsed.path.lstrip("/").partition("/")
    return Dataset(namespace=f"{SCHEME}://{parsed.netloc}/{sandbox}", name=name)
