"""A link from the task to the AEP UI page of the dataset (or the dataflows) a run wrote to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: Experience Cloud's address; the path after ``#/`` selects org, sandbox and page.
AEP_UI_BASE = "https://experience.adobe.com"


def aep_ui_url(*, ims_org_id: str | None, sandbox: str | None, dataset_id: str | None = None) -> str:
    """
    The AEP UI page of ``dataset_id`` (else the list of source dataflows) in the org's sandbox,
    or ``""`` when the org or sandbox is unknown. Best effort: Adobe documents no stable deep-link
    format; this is the one the UI itself shows in the address bar.
    """
    if not ims_org_id or not sandbox:
        return ""
    root = f"{AEP_UI_BASE}/#/@{quote(ims_org_id.strip(), safe='@')}/sname:{quote(sandbox.lower(), safe='')}/platform"
    if dataset_id:
        return f"{root}/dataset/browse/{quote(dataset_id, safe='')}"
    return f"{root}/source/dataflows"


class AEPDatasetLink(BaseOperatorLink):
    """
    "AEP dataset" button on a :class:`~aep_provider.operators.kafka_to_aep.KafkaToAEPOperator` task.

    Airflow 3 computes the link when the task finishes, in the task's process, and keeps it as an
    XCom (``xcom_key``) for the UI; the operator records where the run wrote while it runs.
    """

    name = "AEP dataset"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        target: Any = getattr(operator, "aep_target", None)
        if target is None:
            return ""
        return aep_ui_url(ims_org_id=target.ims_org_id, sandbox=target.sandbox, dataset_id=target.dataset_id)
