"""Search and profiling on a real Ray cluster made here: a head and a second node advertising ``device:testdev``
(no CPUs: it measures, it never trains), all on 127.0.0.1, no dashboard, shut down at the end."""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

# Every Ray address on loopback (nothing listens elsewhere; the machine's own address refuses connections here).
# Ray reads this when it is imported: set before.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
ray = pytest.importorskip("ray")

from hwnas.cluster import RayExecutor  # noqa: E402
from hwnas.search.config import RunConfig  # noqa: E402
from hwnas.search.rundir import RunDir  # noqa: E402
from hwnas.search.runner import run_search  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ray.cluster_utils import Cluster

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False,
                                                          "node_ip_address": "127.0.0.1"})
    device = made.add_node(num_cpus=0, resources={"device:testdev": 1}, node_ip_address="127.0.0.1")
    ray.init(address=made.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test's jobs reach the workers
    yield made, device.node_id
    ray.shutdown()
    made.shutdown()


def _config(latency_table, store, **changes) -> RunConfig:
    settings = dict(budget_ms=0.7, space="nb201", space_options={"channels": 4, "cells_per_stage": 1},
                    dataset="digits", recipe={"epochs": 3, "data_fraction": 0.5}, latency_table=str(latency_table),
                    max_trainings=6, initial_trainings=4, candidates_per_round=2, archs_per_round=60,
                    profile_samples=20, store=str(store), predictor_options={"ensemble_size": 1, "n_estimators": 20})
    return RunConfig(**{**settings, **changes}).resolved()


def _verified(run: RunDir) -> list[tuple[str, float]]:
    return [(v.arch, v.accuracy) for v in run.load_state().verified]


def test_two_workers_train_side_by_side_and_give_the_serial_answer(cluster, latency_table, tmp_path):
    serial = RunDir.create(tmp_path / "serial", _config(latency_table, tmp_path / "serial.sqlite"))
    expected = run_search(serial, echo=lambda line: None)
    parallel = RunDir.create(tmp_path / "parallel", _config(latency_table, tmp_path / "parallel.sqlite"))
    executor = RayExecutor(cluster[0].address, workers=2)
    got = run_search(parallel, echo=lambda line: None, executor=executor)
    timed = ("elapsed_s", "train_seconds")
    untimed = {k: v for k, v in expected["best"].items() if k not in timed}
    assert {k: v for k, v in got["best"].items() if k not in timed} == untimed and got["trainings_used"] == 6
    # the same trainings, the same accuracies to the last bit, recorded in the same order
    assert _verified(parallel) == _verified(serial)
    assert len({accuracy for _, accuracy in _verified(serial)}) > 1  # real trainings that tell them apart


class KillOnce:
    """A job whose first run kills its worker process (as a lost node would); Ray runs it again."""

    local = False

    def __init__(self, job, marker: str) -> None:
        self.job, self.marker = job, marker

    def __call__(self):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return self.job()


class KillingSource:
    """Wraps the run's accuracy source: the first training's worker dies mid-way."""

    def __init__(self, source, marker: str) -> None:
        self.source, self.marker = source, marker

    def evaluate(self, arch):
        return self.source.evaluate(arch)

    def known(self):
        return self.source.known()

    def job(self, arch):
        job = self.source.job(arch)
        return None if job is None else KillOnce(job, self.marker)

    def finish(self, arch, result):
        return self.source.finish(arch, result)


def test_a_training_whose_worker_is_killed_is_retried_and_nothing_is_lost(cluster, latency_table, tmp_path):
    marker = str(tmp_path / "killed-once")
    run = RunDir.create(tmp_path / "run", _config(latency_table, tmp_path / "evals.sqlite", max_trainings=4))
    result = run_search(run, echo=lambda line: None, executor=RayExecutor(cluster[0].address, workers=2),
                        wrap_sources=lambda accuracy, latency: (KillingSource(accuracy, marker), latency))
    assert os.path.exists(marker)  # a worker did die
    assert result["trainings_used"] == 4 and len({a for a, _ in _verified(run)}) == 4


def test_profiling_and_searching_through_the_device_node(cluster, cli, tmp_path):
    address, device_node = cluster[0].address, cluster[1]
    profiles = tmp_path / "profiles"
    result = cli("profile", "--device", "testdev", "--ray", address, "--space", "mobilenet", "--dataset",
                 "digits", "--samples", "10", "--profiles-dir", profiles, "--no-progress")
    assert result.exit_code == 0, result.stderr

    def records():
        lines = (profiles / "testdev" / "measurements.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    assert len(records()) == 10 and {r["ray_node"] for r in records()} == {device_node}
    fingerprint = json.loads((profiles / "testdev" / "device.json").read_text())
    assert fingerprint["device"] == "testdev" and fingerprint["source"] == "measured"
    # a search for that device measures its new candidates there too (not a prediction)
    searched = cli("search", "--device", "testdev", "--ray", address, "--latency-budget", "1s", "--max-trainings",
                   "1", "--initial-trainings", "1", "--epochs", "1", "--data-fraction", "0.3", "--profiles-dir",
                   profiles, "--store", tmp_path / "evals.sqlite", "--run-dir", tmp_path / "run", "--no-progress")
    assert searched.exit_code == 0, searched.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["latency_measured"] is True and result["trainings_used"] == 1
    assert len(records()) > 10 and {r["ray_node"] for r in records()} == {device_node}
    # and the exported model is re-measured there
    exported = cli("export", tmp_path / "run", "-o", tmp_path / "m.onnx", "--epochs", "1", "--ray", address)
    assert exported.exit_code == 0, exported.stderr
    assert "on testdev (its Ray node" in exported.output
    from hwnas.onnx_export import read_metadata

    metadata = read_metadata(tmp_path / "m.onnx")
    # measured there; a noisy first window (>10% above the profile) is re-measured by design and then noted
    source = re.fullmatch(r"measured at export on testdev \(its Ray node(, fastest of (\d+) windows: ([^)]*))?\)",
                          metadata["latency_source"])
    assert source, metadata["latency_source"]
    if source.group(1):
        assert len(source.group(3).split(", ")) == int(source.group(2)) >= 2
    assert metadata["train_device"] == "cpu"  # --train-device auto without a GPU
    missing = cli("profile", "--device", "pi9", "--ray", address, "--samples", "3", "--profiles-dir",
                  tmp_path / "profiles")
    assert missing.exit_code == 1 and "device:pi9" in missing.stderr


def _auto_device_with_cuda() -> tuple[str, list[str]]:
    """Run as a Ray task: what ``auto`` resolves to there if PyTorch saw one GPU, and the ids Ray assigned."""
    from hwnas.training import device as devices

    real = devices._cuda_count
    devices._cuda_count = lambda: 1  # this machine has no GPU: PyTorch is told it has one, for this task only
    try:
        return str(devices.resolve("auto")), devices.ray_gpu_ids()
    finally:
        devices._cuda_count = real


def test_a_gpu_reservation_hands_each_training_its_gpu(cluster):
    from hwnas.cluster import ClusterError
    from hwnas.data.resolve import DatasetSpec
    from hwnas.spaces import create_space
    from hwnas.training import Recipe, Trainer, TrainingError
    from hwnas.training.job import TrainingJob

    made = cluster[0]
    gpu_node = made.add_node(num_cpus=1, num_gpus=1, node_ip_address="127.0.0.1")  # Ray counts a GPU, PyTorch none
    made.wait_for_nodes()
    try:
        with pytest.raises(ClusterError, match="--gpus-per-training 2: no node of the Ray cluster has that many"):
            RayExecutor(made.address, workers=1, gpus_per_task=2)  # refused at once, never a task waiting forever
        executor = RayExecutor(made.address, workers=1, gpus_per_task=1)
        [(_, (device, ids))] = list(executor.run([_auto_device_with_cuda]))
        assert device == "cuda:0" and ids == ["0"]  # auto is the GPU Ray assigned to the task
        space = create_space("mobilenet")
        job = TrainingJob(space=space, arch="16:k3e1/24:k3e1/32:k3e1/48:k3e1", dataset=DatasetSpec("digits"),
                          recipe=Recipe(epochs=1), seed=0, evaluator=Trainer(device="auto", ray_gpus=1))
        with pytest.raises(TrainingError, match="Ray assigned GPU 0 to this training, but PyTorch sees no CUDA"):
            list(executor.run([job]))  # where the GPU is not usable: one line, nothing trained on the CPU instead
    finally:
        made.remove_node(gpu_node)


def test_ray_missing_is_one_line(monkeypatch, cli, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if hwnas[ray] were not installed
    result = cli("search", "--latency-budget", "1ms", "--workers", "2", "--run-dir", tmp_path / "run")
    assert result.exit_code == 1 and "pip install 'hwnas[ray]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
