"""One writer per run folder and per device profile: the lock lives inside the folder, names its holder's PID,
and dies with its process (kill -9 leaves nothing that blocks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from hwnas.locks import LOCK_FILE, folder_lock
from hwnas.profiling import Conditions, ProfileError, ProfileStore, host_fingerprint
from hwnas.profiling.measure import make_record
from hwnas.search.config import RunConfig
from hwnas.search.rundir import RunDir, RunDirError
from hwnas.spaces import create_space

ARCH = "16:k3e1/24:k3e1/32:k3e1/48:k3e1"


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]


def test_a_second_search_or_export_of_a_run_folder_in_use_is_refused_naming_the_pid(cli, tmp_path):
    run = RunDir.create(tmp_path / "run", RunConfig(budget_ms=1.0, max_trainings=3, input_shape=(1, 8, 8),
                                                    num_classes=10))
    with run.lock():
        assert (run.path / LOCK_FILE).exists()
        for args in (("search", "--resume", run.path), ("export", run.path, "-o", tmp_path / "m.onnx")):
            line = _one_error_line(cli(*args))
            assert "in use by another hwnas process" in line and f"PID {os.getpid()}" in line
    with pytest.raises(RunDirError, match="in use"):
        with run.lock():
            with folder_lock(run.path, what="run folder", error=RunDirError):
                pass
    with run.lock():  # released: free again
        pass


def test_the_profile_lock_is_inside_the_profile_folder_and_refuses_a_second_profiler(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "elsewhere"))  # another TMPDIR must not matter
    store = ProfileStore(tmp_path / "profiles", "dev")
    with store.lock():
        assert (tmp_path / "profiles" / "dev" / LOCK_FILE).exists()
        line = _one_error_line(cli("profile", "--device", "dev", "--samples", "2", "--no-progress",
                                   "--profiles-dir", tmp_path / "profiles"))
        assert "profile 'dev'" in line and f"PID {os.getpid()}" in line
    assert not (tmp_path / "profiles" / "dev" / "measurements.jsonl").exists()


def test_a_lock_dies_with_its_process_even_on_kill_9(tmp_path):
    code = (f"import time; from hwnas.locks import folder_lock\n"
            f"with folder_lock({str(tmp_path / 'f')!r}, what='x', error=RuntimeError):\n"
            f"    print('held', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(RuntimeError, match=f"PID {child.pid}"):
            with folder_lock(tmp_path / "f", what="x", error=RuntimeError):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with folder_lock(tmp_path / "f", what="x", error=RuntimeError):
        pass


def test_a_search_measuring_waits_for_the_profile_and_reads_what_was_measured_meanwhile(tmp_path, monkeypatch):
    from hwnas.search.sources import latency as sources

    space = create_space("mobilenet")
    conditions = Conditions()
    holder = ProfileStore(tmp_path / "profiles", "host")
    holder.ensure(host_fingerprint("host", conditions))
    source = sources.ProfileLatency(ProfileStore(tmp_path / "profiles", "host"), space, input_shape=(1, 8, 8),
                                    num_classes=10, conditions=conditions, measurable=True)
    source.records()  # the search has read the profile before the other process adds to it
    monkeypatch.setattr(source.device, "measure_arch", lambda *a, **k: pytest.fail("measured twice"))
    held = threading.Event()

    def other_process():
        with holder.lock():
            held.set()
            time.sleep(0.5)
            holder.add(make_record(space="mobilenet", arch=space.parse(ARCH), input_shape=(1, 8, 8),
                                   num_classes=10, stats={"median_ms": 0.123, "p10_ms": 0.12, "p90_ms": 0.13,
                                                          "converged": True, "runs": 200}))

    thread = threading.Thread(target=other_process)
    thread.start()
    held.wait(5)
    try:
        assert source.measure(space.parse(ARCH)) == {"latency_ms": 0.123, "measured": True}
    finally:
        thread.join()


def test_profile_lock_errors_are_profile_errors(tmp_path):
    store = ProfileStore(tmp_path / "profiles", "dev")
    with store.lock():
        with pytest.raises(ProfileError, match="in use by another hwnas process"):
            with ProfileStore(tmp_path / "profiles", "dev").lock():
                pass
