"""Where earlier tries are heard: the API server (its plugin app), never a worker's task process."""

from __future__ import annotations

import subprocess
import sys


def test_building_the_plugin_app_records_archived_tries_in_the_api_server():
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from sqlalchemy import event

    from aep_provider.history import tries
    from aep_provider.ui.plugin import AEPDeliveriesPlugin

    assert AEPDeliveriesPlugin().fastapi_apps[0]["url_prefix"] == "/aep"
    assert event.contains(TaskInstanceHistory, "after_insert", tries._archived)


def test_a_task_process_loads_no_orm_model_for_it():
    # What a worker's task process does: import the plugin's listener, hear a task start.
    code = (
        "import sys; from aep_provider.history import listener; "
        "listener.on_task_instance_running(previous_state=None, task_instance=None); "
        "print('loaded:', 'airflow.models.taskinstancehistory' in sys.modules, 'airflow.models.taskinstance' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("loaded:")]
    assert line == "loaded: False False", out.stderr
