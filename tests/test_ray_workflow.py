"""The Ray workflow of docs/guides/ray.md, as a user runs it: a head and a device node started with the ``ray
start`` command line (loopback, a temp folder of their own, no dashboard, a free port), then ``hwnas profile``,
``search`` and ``export`` with ``--ray HEAD:PORT``, each its own process. Only the processes started here are
stopped (``ray stop`` would stop every Ray on the machine): each ``ray start --block`` leads its own process
group, which is ended as a whole."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ray_env import isolated_env

pytest.importorskip("ray")
RAY = Path(sys.executable).parent / "ray"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not RAY.exists(), reason="the ray command is not installed")]

#: Each command's limit: far above what it takes, far below a hang.
LIMIT_S = 90


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(processes: list[subprocess.Popen]) -> None:
    """Ends each process's whole group (the raylet, GCS and workers it started): SIGTERM, then SIGKILL to what
    is left after 3 s."""
    def signal_all(sig) -> list[subprocess.Popen]:
        alive = []
        for process in processes:
            try:
                os.killpg(process.pid, sig)
                alive.append(process)
            except ProcessLookupError:
                pass
        return alive

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + 3
    while signal_all(0) and time.monotonic() < deadline:
        time.sleep(0.2)
    signal_all(signal.SIGKILL)
    for process in processes:
        process.wait(timeout=10)


def _wait_for(log: Path, text: str, process: subprocess.Popen, limit_s: float = 45) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        assert process.poll() is None, log.read_text(errors="replace")[-2000:]
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not in {log}: {log.read_text(errors='replace')[-2000:]}")


def _environment(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment every process runs in (:func:`ray_env.isolated_env`), and its HOME."""
    return isolated_env(tmp_path), tmp_path / "home"


@contextlib.contextmanager
def _ray_start(tmp_path: Path, env: dict[str, str], *, device: bool = True):
    """``HEAD:PORT`` of a head (1 CPU) started with ``ray start`` and, with ``device``, a node advertising
    ``device:rt`` (no CPUs); both stopped at the end, and their temp folder removed."""
    temp_dir = tempfile.mkdtemp(prefix="hwnas-wf-", dir="/tmp")  # short: Ray's socket paths live under it
    port = _free_port()
    address = f"127.0.0.1:{port}"
    started: list[subprocess.Popen] = []
    try:
        head_log, device_log = tmp_path / "head.log", tmp_path / "device.log"
        with head_log.open("w") as out:
            started.append(subprocess.Popen(
                [str(RAY), "start", "--head", "--block", "--port", str(port), "--num-cpus", "1",
                 "--node-ip-address", "127.0.0.1", "--temp-dir", temp_dir, "--include-dashboard=false",
                 "--disable-usage-stats"], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True))
        _wait_for(head_log, "Ray runtime started", started[0])
        if device:
            with device_log.open("w") as out:
                started.append(subprocess.Popen(
                    [str(RAY), "start", "--block", "--address", address, "--num-cpus", "0", "--node-ip-address",
                     "127.0.0.1", "--resources", '{"device:rt": 1}'], stdout=out, stderr=subprocess.STDOUT,
                    env=env, start_new_session=True))
            _wait_for(device_log, "Ray runtime started", started[1])
        yield address
    finally:
        _stop(started)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path):
    """``HEAD:PORT`` of a head and a device node, the environment and its HOME."""
    env, home = _environment(tmp_path)
    with _ray_start(tmp_path, env) as address:
        yield address, env, home


def _hwnas(env, cwd, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwnas", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=LIMIT_S)


def test_profile_search_and_export_join_a_cluster_started_with_ray_start(cluster, tmp_path):
    address, env, home = cluster
    profiled = _hwnas(env, tmp_path, "profile", "--device", "rt", "--ray", address, "--space", "mobilenet",
                      "--dataset", "digits", "--samples", "10", "--profiles-dir", "profiles", "--no-progress")
    assert profiled.returncode == 0, profiled.stderr
    records = [json.loads(line) for line in (tmp_path / "profiles/rt/measurements.jsonl").read_text().splitlines()]
    assert len(records) == 10 and len({r["ray_node"] for r in records}) == 1  # measured on the device node

    searched = _hwnas(env, tmp_path, "search", "--device", "rt", "--ray", address, "--workers", "2",
                      "--latency-budget", "1s", "--max-trainings", "1", "--initial-trainings", "1", "--epochs", "1",
                      "--data-fraction", "0.3", "--profile-samples", "10", "--profiles-dir", "profiles", "--store",
                      "evals.sqlite", "--run-dir", "run", "--no-progress")
    assert searched.returncode == 0, searched.stderr
    result = json.loads((tmp_path / "run/result.json").read_text())
    assert result["latency_measured"] is True and result["trainings_used"] == 1

    exported = _hwnas(env, tmp_path, "export", "run", "-o", "m.onnx", "--epochs", "1", "--ray", address)
    assert exported.returncode == 0, exported.stderr
    assert "on rt (its Ray node" in exported.stdout
    assert not (home / ".ray").exists()  # no auth token or anything else of Ray's in the home folder


def test_a_head_with_token_authentication_is_joined_with_its_token_and_refused_in_one_line_without(tmp_path):
    env, home = _environment(tmp_path)
    token = "0123456789abcdef" * 4
    with _ray_start(tmp_path, {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}, device=False) as address:
        missing = _hwnas(env, tmp_path, "profile", "--device", "rt", "--ray", address, "--ray-timeout", "10s",
                         "--samples", "3")
        assert missing.returncode == 1 and "Traceback" not in missing.stderr, missing.stderr[-2000:]
        [line] = [x for x in missing.stderr.splitlines() if x.startswith("Error:")]
        assert f"cannot reach the Ray cluster at {address}" in line and "RAY_AUTH_TOKEN" in line
        # the token in RAY_AUTH_TOKEN alone is enough: hwnas sends it (Ray needs RAY_AUTH_MODE=token as well)
        joined = _hwnas({**env, "RAY_AUTH_TOKEN": token}, tmp_path, "profile", "--device", "rt", "--ray", address,
                        "--samples", "3")
        assert joined.returncode == 1 and "no node of the Ray cluster advertises device:rt" in joined.stderr
    assert not (home / ".ray").exists()
