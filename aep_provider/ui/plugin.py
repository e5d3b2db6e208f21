"""
The provider's Airflow plugin (entry point ``airflow.plugins``): the deliveries page and the
listener that fills its history.

Airflow imports plugins in every process, task processes included: this module defines plain
data only; the web app and the listener are imported when the API server or the scheduler asks.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin

#: Where the app is mounted on the API server.
URL_PREFIX = "/aep"
VIEW_NAME = "AEP deliveries"


class AEPDeliveriesPlugin(AirflowPlugin):
    """The "AEP deliveries" page: in the nav bar (Browse), as a tab on each DAG and on each task instance."""

    name = "aep_provider"
    external_views = [
        {"name": VIEW_NAME, "href": f"{URL_PREFIX}/", "destination": "nav", "category": "browse",
         "url_route": "aep-deliveries"},
        {"name": VIEW_NAME, "href": f"{URL_PREFIX}/dags/{{DAG_ID}}", "destination": "dag",
         "url_route": "aep-dag-deliveries"},
        {"name": VIEW_NAME, "href": f"{URL_PREFIX}/dags/{{DAG_ID}}/tasks/{{TASK_ID}}?run_id={{RUN_ID}}",
         "destination": "task_instance", "url_route": "aep-task-deliveries"},
    ]  # fmt: skip

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from aep_provider.ui.app import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": VIEW_NAME}]

    @cached_property
    def listeners(self) -> list[Any]:  # type: ignore[override]
        from aep_provider.history import listener

        return [listener]
