"""``kill -9`` of a real ``hwnas search`` process at the points of issue 15's drill — right after state writes
(including the one after a round's last training), in the middle of the controller checkpoint's write, and
between the checkpoint's write and the state that records it: every resume ends in the uninterrupted run's
answer, with the same trainings in the same order. A table search (NAS-Bench-201 cells, synthetic tables) keeps
each process to a few seconds; the default controller (PPO) checkpoints every round."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fault_cases import TABLE_SEARCH, _nb201_tables

DRIVER = Path(__file__).with_name("kill_driver.py")


def hwnas(args, *, cwd: Path, kill: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "HWNAS_TEST_KILL": kill}
    return subprocess.run([sys.executable, str(DRIVER), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def trained(run: Path) -> list[tuple[str, float, float]]:
    state = json.loads((run / "state.json").read_text())
    return [(v["arch"], v["accuracy"], v["latency_ms"]) for v in state["verified"]]


def test_kill_9_at_each_point_resumes_to_the_uninterrupted_answer(tmp_path):
    _nb201_tables(tmp_path)
    args = [a.format(tmp=tmp_path) for a in TABLE_SEARCH] + ["--max-trainings", "9"]
    # Each run has its own store: runs sharing one learn from each other's evaluations (by design).
    reference = hwnas(["search", *args, "--run-dir", tmp_path / "ref", "--store", tmp_path / "ref.sqlite",
                       "--profiles-dir", tmp_path / "ref-profiles"], cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    run = tmp_path / "run"
    # One chain of kills, each in a new process resuming the previous one's folder: state writes are counted
    # per process (the 3rd write of a fresh run is inside the initial trainings; later ones land after
    # measurements, trainings and the round's last training).
    points = ["state:3", "ckpt-torn:1", "ckpt:1", "state:6"]
    for i, point in enumerate(points):
        command = (["search", *args, "--run-dir", run, "--store", tmp_path / "run.sqlite", "--profiles-dir",
                    tmp_path / "profiles"] if i == 0 else ["search", "--resume", run])
        killed = hwnas(command, cwd=tmp_path, kill=point)
        assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])
        if point.startswith("ckpt-torn"):  # killed mid-write: the torn temporary file is there
            assert list(run.glob(".controller.ckpt.next.*.tmp"))
    finished = hwnas(["search", "--resume", run], cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert trained(run) == trained(tmp_path / "ref")
    result, expected = (json.loads((folder / "result.json").read_text()) for folder in (run, tmp_path / "ref"))
    def answer(res):
        return {k: v for k, v in res["best"].items() if k != "elapsed_s"}  # wall time differs, nothing else

    assert answer(result) == answer(expected) and result["trainings_used"] == expected["trainings_used"] == 9
    def rows(folder):  # every column but the wall time
        lines = [line.split(",") for line in (folder / "history.csv").read_text().splitlines()]
        keep = [i for i, name in enumerate(lines[0]) if name != "elapsed_s"]
        return [[line[i] for i in keep] for line in lines]

    assert rows(run) == rows(tmp_path / "ref")
    assert not list(run.rglob("*.tmp"))  # what the kills left was removed on resume
