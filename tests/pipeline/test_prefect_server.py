"""Against a real `prefect server start`: the CLI run is recorded with its artifacts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from demo_store.live import advance_store
from tasks.settings import OFFLINE_ENVIRONMENT
from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrefectServer:
    """`prefect server start` on 127.0.0.1 with its own SQLite database; restartable."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        database = f"sqlite+aiosqlite:///{folder / 'prefect.db'}"
        self.env = (
            os.environ
            | {
                "PREFECT_HOME": str(folder / "prefect_home"),
                "PREFECT_API_DATABASE_CONNECTION_URL": database,
                "PREFECT_UI_ENABLED": "false",
            }
            | OFFLINE_ENVIRONMENT
        )
        self.env.pop("PREFECT_API_URL", None)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.folder / "server.log").open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.api}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"prefect server did not start: {(self.folder / 'server.log').read_text()}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def server(tmp_path):
    running = PrefectServer(tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def prefect_server(server):
    return server.api, server.env


def cli_nightly(data_root: Path, *options: str) -> list[str]:
    """`python -m flows.nightly` on data_root: top 5, a permissive gate, one thread."""
    return [
        sys.executable,
        "-m",
        "flows.nightly",
        "--data_root",
        str(data_root),
        "--top_n",
        "5",
        "--gate.min_lift",
        "-1",
        "--gate.relaxed_on_purpose",
        "the server's records are under test",
        "--num_threads",
        "1",
        *options,
    ]


def test_cli_run_is_recorded_by_a_running_server(prefect_server, data_root):
    api, env = prefect_server
    result = subprocess.run(
        cli_nightly(data_root, "--model.epochs", "5"),
        env=env | {"PREFECT_API_URL": api},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "published:" in result.stdout and "gate: PASSED" in result.stdout
    assert "Starting temporary server" not in result.stderr  # it used the real server

    runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
    (run,) = [r for r in runs if r["parent_task_run_id"] is None]
    (publishing,) = [r for r in runs if r["parent_task_run_id"] is not None]  # the subflow
    assert run["state_type"] == publishing["state_type"] == "COMPLETED"
    assert run["parameters"]["params"]["top_n"] == 5
    artifacts = httpx.post(f"{api}/artifacts/filter", json={}, timeout=10).json()
    keys = {a["key"] for a in artifacts}
    assert {
        "validation-summary",
        "candidate-metrics",
        "gate-decision",
        "published-recommendations",
    } <= keys
    gate_md = next(a for a in artifacts if a["key"] == "gate-decision")["data"]
    assert "PASSED" in gate_md


def test_prefect_deploy_registers_the_work_pool_deployments(prefect_server):
    """The production path: `prefect deploy --all` of deployments/prefect.yaml, from the root."""
    api, env = prefect_server
    env = env | {"PREFECT_API_URL": api}
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    for command in (
        ["work-pool", "create", "recs-process", "--type", "process"],
        ["deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
    ):
        result = subprocess.run(
            prefect + command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    listed = call("POST", f"{api}/deployments/filter", json={}).json()
    by_name = {d["name"]: d for d in listed}
    assert set(by_name) == {"nightly", "monitor", "rollback"}
    for deployment in listed:
        assert deployment["work_pool_name"] == "recs-process"
        assert deployment["enforce_parameter_schema"] is True
        # a process worker starts each run in a temporary folder: it must move into the checkout
        (step,) = deployment["pull_steps"]
        assert step["prefect.deployments.steps.set_working_directory"]["directory"] == str(REPO)
    nightly = by_name["nightly"]
    (schedule,) = nightly["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["schedule"]["timezone"]
    assert nightly["global_concurrency_limit"]["limit"] == 1
    assert nightly["entrypoint"] == "flows/nightly.py:nightly"
    assert by_name["rollback"]["schedules"] == []


def call(method: str, url: str, **kwargs) -> httpx.Response:
    """One API call; a busy SQLite server may answer 5xx (database locked): try again."""
    for attempt in range(5):
        try:
            response = httpx.request(method, url, timeout=kwargs.pop("timeout", 10), **kwargs)
        except httpx.TransportError:
            if attempt == 4:
                raise
            time.sleep(1 + attempt)
            continue
        if response.status_code < 500 or attempt == 4:
            return response
        time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _start(api: str, deployment_id: str, params: dict) -> str:
    """A Custom run of the deployment, as the UI's form submits it; its flow run id."""
    response = call(
        "POST",
        f"{api}/deployments/{deployment_id}/create_flow_run",
        json={"parameters": {"params": params}},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _wait(api: str, flow_run_id: str, timeout: float = 600) -> str:
    """The flow run's final state type."""
    deadline = time.monotonic() + timeout
    while True:
        state = call("GET", f"{api}/flow_runs/{flow_run_id}").json()["state_type"]
        if state in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return state
        assert time.monotonic() < deadline, f"still {state}"
        time.sleep(2)


def test_served_nightly_runs_a_custom_run_from_the_api(prefect_server, data_root, tmp_path):
    """As the UI's "Custom run" does: a served deployment, a non-default parameter; then the
    served monitor notices new users and retrains through the nightly deployment."""
    # Long on purpose: one served process and its flow runs are the fixture; each step
    # depends on the state the one before left on the server.
    api, env = prefect_server
    serve_env = env | {"PREFECT_API_URL": api, "RECS_DATA_ROOT": str(data_root)}
    log = (tmp_path / "serve.log").open("w")
    served = subprocess.Popen(
        [sys.executable, "-m", "deployments.serve"],
        cwd=REPO,
        env=serve_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            listed = call("POST", f"{api}/deployments/filter", json={}).json()
            if len(listed) == 3:  # serve registers them one by one
                break
            if served.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"serve did not register: {(tmp_path / 'serve.log').read_text()}"
                )
            time.sleep(1)
        deployment = call("GET", f"{api}/deployments/name/nightly/nightly").json()
        form = deployment["parameter_openapi_schema"]
        fields = form["definitions"]["NightlyParams"]["properties"]
        assert fields["top_n"]["type"] == "integer" and fields["top_n"]["minimum"] == 1
        assert fields["extraction"]["enum"] == ["full", "incremental"]
        assert deployment["enforce_parameter_schema"] is True
        (schedule,) = deployment["schedules"]
        assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["active"]
        assert deployment["global_concurrency_limit"]["limit"] == 1
        assert {d["name"] for d in listed} == {"nightly", "monitor", "rollback"}

        refused = call(
            "POST",
            f"{api}/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": {"params": {"top_n": 0}}},
            timeout=10,
        )
        assert refused.status_code == 409  # the form's bounds hold on the server too
        # a relaxed gate that does not say why is refused before anything is read
        unstated = _start(
            api, deployment["id"], {"data_root": str(data_root), "gate": {"min_lift": -1}}
        )
        assert _wait(api, unstated) == "FAILED"
        message = call("GET", f"{api}/flow_runs/{unstated}").json()["state"]["message"]
        assert "relaxed_on_purpose" in message, message
        assert not (data_root / "published").exists()
        run_params = {
            "top_n": 7,
            "data_root": str(data_root),
            "gate": {
                "min_lift": -1,
                "champion_tolerance": 1.0,
                "segment_tolerance": 1.0,
                "relaxed_on_purpose": "a deployment run's parameters are under test",
            },
            "model": {"no_components": 16, "epochs": 5},
            "tuning": {"search": False},
            "num_threads": 1,
        }
        state = _wait(api, _start(api, deployment["id"], run_params))
        assert state == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        published = pq.read_table(data_root / "published" / "latest" / "recommendations.parquet")
        assert max(published.column("rank").to_pylist()) == 7

        # The world changes; the served `monitor` retrains through Prefect: a run of the
        # `nightly` deployment, named and tagged for it, with the reason in its parameters.
        advance_store(data_root / "demo" / "store.db", 10, "new_users")
        monitor_deployment = call("GET", f"{api}/deployments/name/monitor/monitor").json()
        watch = {
            "nightly": run_params | {"top_n": 5},
            "retrain": "deployment",
            "drift": {"min_rows": 50},
        }
        state = _wait(api, _start(api, monitor_deployment["id"], watch))
        assert state == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        (retrain,) = call(
            "POST",
            f"{api}/flow_runs/filter",
            json={"flow_runs": {"tags": {"all_": ["retrain"]}}},
            timeout=10,
        ).json()
        assert retrain["deployment_id"] == deployment["id"]
        assert retrain["name"].startswith("retrain: monitoring: ")
        reason = retrain["parameters"]["params"]["reason"]
        assert "users.region drifted" in reason
        assert _wait(api, retrain["id"]) == "COMPLETED", (tmp_path / "serve.log").read_text()[
            -3000:
        ]
        metrics = json.loads((data_root / "published" / "latest" / "metrics.json").read_text())
        assert metrics["trigger"] == reason
        published = pq.read_table(data_root / "published" / "latest" / "recommendations.parquet")
        assert max(published.column("rank").to_pylist()) == 5
    finally:
        served.terminate()
        served.wait(timeout=60)
        log.close()


def test_a_run_survives_the_prefect_server_restarting(server, data_root):
    """The server stops while a CLI nightly is between extraction and publication, and
    comes back on the same port and database a few seconds later: the run's client retries
    (PREFECT_CLIENT_MAX_RETRIES), the run publishes, and the restarted server records the
    rest of it as COMPLETED."""
    nightly = subprocess.Popen(
        cli_nightly(data_root),
        env=server.env | {"PREFECT_API_URL": server.api},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not list((data_root / "runs").glob("*/snapshot/events.parquet")):
        assert nightly.poll() is None and time.monotonic() < deadline, nightly.communicate()
        time.sleep(0.2)
    server.stop()
    assert nightly.poll() is None  # the run goes on without its server
    time.sleep(3)
    server.start()
    back = time.time()
    stdout, stderr = nightly.communicate(timeout=600)
    assert nightly.returncode == 0, stderr[-3000:]
    assert "published:" in stdout
    (run,) = [
        r
        for r in call("POST", f"{server.api}/flow_runs/filter", json={}).json()
        if r["parent_task_run_id"] is None
    ]
    assert run["state_type"] == "COMPLETED"
    tasks = call(
        "POST",
        f"{server.api}/task_runs/filter",
        json={"flow_runs": {"id": {"any_": [run["id"]]}}},
    ).json()
    after = [t for t in tasks if t["start_time"] and _epoch(t["start_time"]) > back]
    assert after, "no task started after the restart: the run ended too early to test this"
    assert all(t["state_type"] == "COMPLETED" for t in after)


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
