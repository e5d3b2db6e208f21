"""
End to end: the "AEP deliveries" page in a real ``airflow standalone`` and a real headless Chromium.

One stack (module scope) serves every check: two DAG runs drain a topic holding a record AEP
cannot take (dead-lettered) and a tombstone (skipped); the scheduler-side listener records them;
the API answers only authenticated users who may read the DAG; a browser logs in, opens the nav
page and the DAG tab, reads the run table and the totals inside the view's iframe, searches an
offset and reads the answer. Screenshots go to ``$AEP_TEST_ARTIFACTS`` (default
``.local/test-artifacts``); ``AEP_UPDATE_DOCS_SCREENSHOT=1`` also copies the DAG tab's to
``docs/images/deliveries-page.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import requests
from confluent_kafka import Producer

from scripts.devstack import REPO_ROOT, DevStack
from scripts.kafka_local import free_port
from scripts.sample_events import DEFAULT_DATASET_ID, DEFAULT_SCHEMA_ID, EMULATOR_IMS_ORG_ID, sample_event
from tests.e2e.support import diagnostics

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DAG_ID = "e2e_deliveries_page"
TASK_ID = "drain"
GOOD = 12
WAIT_SECONDS = 240.0
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
)  # fmt: skip
ARTIFACTS = Path(os.environ.get("AEP_TEST_ARTIFACTS") or REPO_ROOT / ".local" / "test-artifacts")
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "images" / "deliveries-page.png"

DAG = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator

with DAG(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    KafkaToAEPOperator(
        task_id="{task_id}",
        topics="{topic}",
        dlq_topic="{dlq}",
        kafka_config_overrides={{"group.id": "{group}"}},
        max_run_seconds=120,
        # A try whose start the busy API server answers too late fails before draining anything: try again.
        retries=2,
        retry_delay=timedelta(seconds=5),
    )
"""


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> tuple[str, str]:
    from confluent_kafka.admin import AdminClient, NewTopic

    suffix = uuid.uuid4().hex[:8]
    topic, dlq = f"e2e.page.{suffix}", f"e2e.page.{suffix}.dlq"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, 2, 1), NewTopic(dlq, 1, 1)]).values():
        future.result(30)
    return topic, dlq


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, topics, tmp_path_factory: pytest.TempPathFactory):
    topic, dlq = topics
    dags = tmp_path_factory.mktemp("dags")
    group = f"e2e-page-{uuid.uuid4().hex[:8]}"
    (dags / f"{DAG_ID}.py").write_text(
        textwrap.dedent(DAG.format(dag_id=DAG_ID, task_id=TASK_ID, topic=topic, dlq=dlq, group=group))
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEP_")}
    # A viewer reads DAGs; a user without a role cannot (SimpleAuthManager's way to say "no DAG access").
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin,viewer:viewer,norole:"
    stack = DevStack(
        state_dir=tmp_path_factory.mktemp("stack"),
        emulator_port=free_port(),
        api_port=free_port(),
        rate=0,
        kafka_bootstrap=kafka_bootstrap,
        env=env,
        timeout=180,
        dags_folder=dags,
    )
    try:
        stack.start(unpause=False)
        stack.unpause_dag(DAG_ID)
        yield stack
    finally:
        stack.stop(quiet=True)


def _produce(bootstrap: str, topic: str, start: int, count: int, bad: bool) -> None:
    """``count`` sample events on partition 0 (plus, with ``bad``, a record that is not JSON and a tombstone)."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for seq in range(start, start + count):
        event = sample_event(
            seq, schema_id=DEFAULT_SCHEMA_ID, dataset_id=DEFAULT_DATASET_ID, ims_org_id=EMULATOR_IMS_ORG_ID
        )
        producer.produce(topic, json.dumps(event).encode(), partition=0)
        if bad and seq == start + 2:
            producer.produce(topic, b"{not json", partition=0)  # offset start + 3
            producer.produce(topic, None, key=b"gone", partition=0)  # offset start + 4: tombstone
    assert producer.flush(30) == 0


def _token(stack: DevStack, user: str) -> str:
    passwords = json.loads((stack.airflow_home / "simple_auth_manager_passwords.json.generated").read_text())
    resp = requests.post(
        f"{stack.api_url}/auth/token", json={"username": user, "password": passwords[user]}, timeout=30
    )
    assert resp.status_code in (200, 201), resp.text
    return resp.json()["access_token"]


def _trigger_and_wait(session: requests.Session, stack: DevStack) -> str:
    created = session.post(f"{stack.api_url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None}, timeout=60)
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with contextlib.suppress(requests.RequestException):
            run = session.get(f"{stack.api_url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", timeout=30).json()
            if run.get("state") in ("success", "failed"):
                assert run["state"] == "success", f"run {run_id} ended {run['state']}\n{diagnostics(stack, 40)}"
                return run_id
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} not finished after {WAIT_SECONDS:g}s\n{diagnostics(stack, 40)}")
        time.sleep(2)


@pytest.fixture(scope="module")
def runs(stack: DevStack, topics, kafka_bootstrap: str) -> list[str]:
    """Two finished runs: the first meets the bad record and the tombstone, the second only good records."""
    topic, _ = topics
    session = stack.api_session()
    _produce(kafka_bootstrap, topic, 0, GOOD, bad=True)
    first = _trigger_and_wait(session, stack)
    _produce(kafka_bootstrap, topic, GOOD, 5, bad=False)
    second = _trigger_and_wait(session, stack)
    return [first, second]


def _api(stack: DevStack, path: str, token: str | None = None, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{stack.api_url}/aep/api/v1/{path}", params=params, headers=headers, timeout=60)


def test_the_api_answers_only_users_who_may_read_the_dag(stack: DevStack, runs, topics):
    topic, _ = topics
    where = {"topic": topic, "partition": 0, "offset": 3}
    for path, params in (("deliveries", {"dag_id": DAG_ID}), ("where", where), ("where", {**where, "dag_id": DAG_ID})):
        assert _api(stack, path, **params).status_code in (401, 403), f"anonymous {path} {params}"
        assert _api(stack, path, _token(stack, "norole"), **params).status_code == 403, f"no-role {path} {params}"
    assert _api(stack, "deliveries", "not-a-valid-token", dag_id=DAG_ID).status_code in (401, 403)

    viewer = _token(stack, "viewer")
    data = _api(stack, "deliveries", viewer, dag_id=DAG_ID).json()
    assert [r["run_id"] for r in data["runs"]] == list(reversed(runs))  # newest first
    assert data["totals"] == {
        "runs": 2, "delivered": GOOD + 5, "rejected": 1, "dead_lettered": 1, "skipped": 1, "failed_in_aep": None,
    }  # fmt: skip
    assert data["rejections_by_reason"] == [{"reason": "invalid JSON", "count": 1, "runs": 1}]
    (answer,) = _api(stack, "where", viewer, **where).json()["answers"]
    assert (answer["status"], answer["run_id"], answer["reason"]) == ("dead_lettered", runs[0], "invalid JSON")
    later = _api(stack, "where", viewer, topic=topic, partition=0, offset=GOOD + 4).json()["answers"][0]
    assert (later["status"], later["run_id"]) == ("delivered", runs[1])
    bad = _api(stack, "where", viewer, topic=topic, partition="three", offset=1)
    assert bad.status_code == 422 and "partition" in bad.text


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not Path(CHROMEDRIVER).exists():
        pytest.fail(f"{CHROMEDRIVER} is missing: apt-get install chromium chromium-driver (.ci/run does)")
    profile = tempfile.mkdtemp(prefix="aep-e2e-chromium-")
    options = webdriver.ChromeOptions()
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, what: str, timeout: float = 60):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition)
    except TimeoutException:
        _shot(driver, f"failed-{what.replace(' ', '-')}")
        pytest.fail(f"timed out waiting for {what}; screenshot in {ARTIFACTS}")


def _shot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"deliveries-{name}.png"
    driver.save_screenshot(str(path))
    return path


def _enter_view(driver, url: str, what: str) -> None:
    """Open an Airflow page and switch into the plugin's iframe once its content is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.switch_to.default_content()
    driver.get(url)
    _wait(driver, ec.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")), f"the {what} iframe")
    _wait(driver, ec.presence_of_element_located((By.TAG_NAME, "h1")), f"the {what} heading")


def test_a_user_reads_runs_totals_and_where_a_record_went_in_the_browser(stack: DevStack, runs, topics, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    topic, dlq = topics
    driver = browser
    password = stack.admin_password()
    driver.get(f"{stack.api_url}/auth/login")
    inputs = _wait(driver, lambda d: d.find_elements(By.TAG_NAME, "input") or False, "the login form")
    inputs[0].send_keys("admin")
    inputs[1].send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, lambda d: "/auth/login" not in d.current_url, "the login to finish")

    # The nav entry: every task with history, across the DAGs this user may read.
    _enter_view(driver, f"{stack.api_url}/plugin/aep-deliveries", "nav page")
    tasks = driver.find_element(By.ID, "tasks").text
    assert DAG_ID in tasks and TASK_ID in tasks
    _shot(driver, "nav")

    # The DAG tab: the run table and the totals, inside the view.
    _enter_view(driver, f"{stack.api_url}/dags/{DAG_ID}/plugin/aep-dag-deliveries", "DAG tab")
    rows = driver.find_elements(By.CSS_SELECTOR, "#runs tr[data-run-id]")
    assert [r.get_attribute("data-run-id") for r in rows] == list(reversed(runs))
    first = rows[-1].text
    assert "success" in first and f" {GOOD} 1 1 " in f" {first} "  # delivered, rejected, dead-lettered
    totals = {b.get_attribute("data-total"): b.text for b in driver.find_elements(By.CSS_SELECTOR, "#totals b")}
    assert totals == {
        "delivered": str(GOOD + 5), "rejected": "1", "dead_lettered": "1", "skipped": "1", "failed_in_aep": "—",
    }  # fmt: skip
    assert "invalid JSON" in driver.find_element(By.ID, "reasons").text

    # Where did offset 3 (the record that is not JSON) go?
    form = driver.find_element(By.ID, "where")
    form.find_element(By.NAME, "topic").send_keys(topic)
    form.find_element(By.NAME, "partition").send_keys("0")
    form.find_element(By.NAME, "offset").send_keys("3")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    answer = _wait(driver, ec.presence_of_element_located((By.ID, "where-answer")), "the where answer")
    text = answer.text
    assert text.startswith("Dead-lettered by run " + runs[0]) and "invalid JSON" in text, text
    assert f"It is in {dlq}, with headers aep.source.offset=3" in text, text
    shot = _shot(driver, "dag-tab")
    if os.environ.get("AEP_UPDATE_DOCS_SCREENSHOT"):
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)

    # The task-instance tab of the first run highlights that run.
    _enter_view(
        driver, f"{stack.api_url}/dags/{DAG_ID}/runs/{runs[0]}/tasks/{TASK_ID}/plugin/aep-task-deliveries", "task tab"
    )
    current = driver.find_elements(By.CSS_SELECTOR, "#runs tr.current")
    assert [r.get_attribute("data-run-id") for r in current] == [runs[0]]
    _shot(driver, "task-tab")
