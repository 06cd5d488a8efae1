"""No command waits forever on Ray (issue 34): an address nothing answers at, a GPU the cluster does not have, a
task no live node can take and an absurd thread count are each one line within a limit; a local Ray started by
hwnas leaves nothing in the home folder and works from a deep run folder. Each external wait runs as its own
process under a 90 s guard (a hang fails the test instead of stalling the suite)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ray_env import isolated_env

from hwnas.cluster import ClusterError, RayExecutor, ray_timeout, ray_timeout_s, wait_one

GUARD_S = 90


def _hwnas(tmp_path: Path, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwnas", *map(str, args)], cwd=cwd or tmp_path,
                          env=isolated_env(tmp_path), capture_output=True, text=True, timeout=GUARD_S)


def _error_line(result: subprocess.CompletedProcess) -> str:
    """hwnas's own line (Ray's C++ layer may log retries before it); no traceback."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(ours) == 1, result.stderr[-2000:]
    return ours[0]


def _table_search(tmp_path: Path) -> list[str]:
    from fault_cases import TABLE_SEARCH, _nb201_tables

    _nb201_tables(tmp_path)
    return [a.replace("{tmp}", str(tmp_path)) for a in TABLE_SEARCH] + ["--max-trainings", "4", "--store",
                                                                         str(tmp_path / "evals.sqlite")]


# --- reaching a cluster -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("address, says", [("256.1.1.1:1", "cannot reach the Ray cluster at 256.1.1.1:1"),
                                           ("127.0.0.1:1", "Connection refused")])
def test_an_address_nothing_answers_at_is_one_line_at_once(tmp_path, address, says):
    result = _hwnas(tmp_path, "profile", "--device", "rt", "--ray", address, "--ray-timeout", "3s", "--samples", "3",
                    "--profiles-dir", tmp_path / "p")
    assert says in _error_line(result)


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers (Ray's client would wait on it for minutes)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.mark.slow
def test_a_cluster_that_never_answers_is_one_line_within_the_limit(tmp_path, silent_port):
    address = f"127.0.0.1:{silent_port}"
    commands = {
        "profile": ["profile", "--device", "rt", "--samples", "3", "--profiles-dir", tmp_path / "p"],
        "search": ["search", *_table_search(tmp_path), "--workers", "2", "--run-dir", tmp_path / "run"],
        "export": ["export", "-o", tmp_path / "m.onnx", "--arch", "16:k3e1/24:k3e1/32:k3e1/48:k3e1",
                   "--dataset", "digits", "--epochs", "1"],
    }
    for name, args in commands.items():
        line = _error_line(_hwnas(tmp_path, *args, "--ray", address, "--ray-timeout", "2s"))
        assert f"cannot reach the Ray cluster at {address}" in line and "2s" in line, (name, line)
    assert not (tmp_path / "run").exists() and not (tmp_path / "m.onnx").exists()


def test_ray_timeout_reads_durations_and_refuses_nonsense(cli, tmp_path):
    for bad in ("0s", "-3", "soon"):
        result = cli("profile", "--device", "rt", "--ray", "127.0.0.1:1", "--ray-timeout", bad, "--samples", "3")
        assert result.exit_code == 2 and "--ray-timeout" in result.stderr, (bad, result.stderr)
    assert ray_timeout_s() == 30.0  # the default, and a command's own limit does not outlive it
    with ray_timeout(90):
        assert ray_timeout_s() == 90
    assert ray_timeout_s() == 30.0
    with pytest.raises(ClusterError, match="--ray-timeout"):
        with ray_timeout(float("nan")):
            pass


# --- waiting on the cluster ---------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_gpus_the_cluster_does_not_have_are_refused_in_one_line(tmp_path, workers):
    pytest.importorskip("ray")
    if _has_cuda():
        pytest.skip("this machine has a GPU")
    result = _hwnas(tmp_path, "search", *_table_search(tmp_path), "--workers", workers, "--gpus-per-training",
                    "0.5", "--run-dir", tmp_path / "run")
    line = _error_line(result)
    assert "--gpus-per-training 0.5" in line and "the cluster has 0" in line
    assert not (tmp_path / "run").exists()
    assert not list((tmp_path / "home").iterdir())  # nothing of Ray's in the home folder


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


class _NeverReady:
    """Ray's ``wait`` where nothing ever finishes, and ``nodes`` of a cluster that has lost the right node."""

    def __init__(self, nodes) -> None:
        self.waits = 0
        self._nodes = nodes

    def wait(self, refs, num_returns=1, timeout=None):
        self.waits += 1
        return [], list(refs)

    def nodes(self):
        return self._nodes


def test_a_training_no_live_node_can_take_is_one_line_after_the_limit():
    executor = RayExecutor.__new__(RayExecutor)  # its checks alone, without a cluster
    executor.cpus_per_task, executor.gpus_per_task, executor.timeout_s = 1, 1.0, 5.0
    executor.ray = _NeverReady([{"Alive": True, "Resources": {"CPU": 8}},
                                {"Alive": False, "Resources": {"CPU": 8, "GPU": 1}}])  # the GPU node is gone
    with pytest.raises(ClusterError, match="waited --ray-timeout 5s for 1 CPUs and 1 GPUs, which no live node"):
        wait_one(executor.ray, ["ref"], executor.timeout_s, executor._check_placeable)
    assert executor.ray.waits == 1
    # a task that can be placed somewhere is waited for (a long training is no hang)
    executor.ray._nodes = [{"Alive": True, "Resources": {"CPU": 8, "GPU": 2}}]
    executor._check_placeable()


def test_a_measurement_whose_device_node_is_gone_is_one_line():
    from hwnas.devices.ray import RayNodeDevice

    device = RayNodeDevice.__new__(RayNodeDevice)
    device.executor = executor = RayExecutor.__new__(RayExecutor)
    executor.timeout_s = 4.0
    executor.ray = device.ray = _NeverReady([{"Alive": False, "Resources": {"device:rt": 1}}])
    device.name = "rt"
    with pytest.raises(ClusterError, match="waited --ray-timeout 4s and no live node .* advertises device:rt"):
        device._get("ref")


# --- threads ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["profile", "--device", "h", "--samples", "3", "--measure-threads"],
                                     ["search", "--latency-budget", "1ms", "--train-threads"],
                                     ["search", "--latency-budget", "1ms", "--measure-threads"],
                                     ["train", "16:k3e1/24:k3e1/32:k3e1/48:k3e1", "--train-threads"]])
def test_a_thread_count_beyond_the_machine_is_refused_before_work(cli, tmp_path, command):
    from hwnas.cli.common import max_threads

    result = cli(*command, "100000")
    assert result.exit_code == 2 and f"is not between 1 and {max_threads()}" in result.stderr, result.stderr
    assert max_threads() == 4 * (os.cpu_count() or 1)


# --- no litter ----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_local_ray_leaves_nothing_behind_and_works_from_a_deep_folder(tmp_path):
    pytest.importorskip("ray")
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    deep = deep / ("f" * max(1, 150 - len(str(deep)) - 1))
    deep.mkdir()
    assert len(str(deep)) >= 150
    before = set(os.listdir(tempfile.gettempdir()))
    # a RAY_ADDRESS in the environment does not turn the local Ray into a connection to it
    result = subprocess.run([sys.executable, "-m", "hwnas", "search", *_table_search(tmp_path), "--workers", "2",
                             "--run-dir", str(deep / "run")], cwd=deep, capture_output=True, text=True,
                            env={**isolated_env(tmp_path), "RAY_ADDRESS": "127.0.0.1:1"}, timeout=GUARD_S)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (deep / "run" / "result.json").exists()
    assert not list((tmp_path / "home").iterdir())  # no ~/.ray/auth_token, nothing else
    left = {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("hwnas-ray-")}
    assert not left  # the local Ray's own temp folder is removed at exit


def test_the_python_api_takes_the_limit_too(tmp_path, latency_table):
    import hwnas
    from hwnas.errors import HwnasError
    from hwnas.search.config import RunConfig

    config = RunConfig(budget_ms=0.7, space="nb201", latency_table=str(latency_table), max_trainings=2,
                       store=str(tmp_path / "evals.sqlite"))
    with pytest.raises(HwnasError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        hwnas.start_search(config, tmp_path / "run", ray_address="127.0.0.1:1", ray_timeout_s=2)
    assert not (tmp_path / "run").exists()  # no folder for a search that could not start
    with pytest.raises(HwnasError, match="ray_timeout_s must be a positive duration"):
        hwnas.start_search(config, tmp_path / "run2", ray_address="127.0.0.1:1", ray_timeout_s=0)
    assert ray_timeout_s() == 30.0


def test_a_resume_may_give_its_own_ray_timeout(cli, tmp_path):
    table = _table_search(tmp_path)
    first = cli("search", *table, "--run-dir", tmp_path / "run")
    assert first.exit_code == 0, first.stderr
    resumed = cli("search", "--resume", tmp_path / "run", "--ray-timeout", "5s")
    assert resumed.exit_code == 0, resumed.stderr  # not a run setting: a resume may change it
