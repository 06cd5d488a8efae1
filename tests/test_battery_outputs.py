"""The output battery of issue 34 (item 1): every path a command writes is checked before any work. A device,
a FIFO, a symbolic link (without ``--force``), a file of a run folder or a profile, one of the command's own
inputs, or a non-empty folder that is no hwnas folder is refused in one ``Error:`` line, and nothing outside
the intended output changes. Devices and FIFOs are made inside the test's own folder, never the system's."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from battery import assert_refused
from fault_cases import ARCH, CONFIG, TABLE_SEARCH, _nb201_tables


def _fifo(tmp: Path) -> dict:
    try:
        os.mkfifo(tmp / "pipe")
    except (AttributeError, OSError) as exc:
        pytest.skip(f"no FIFO here: {exc}")
    return {}


def _device(tmp: Path) -> dict:
    """A character device node like /dev/null (1, 3), made in the test's folder (root only)."""
    try:
        os.mknod(tmp / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (AttributeError, OSError) as exc:
        pytest.skip(f"no device node can be made here: {exc}")
    return {}


def _link(tmp: Path) -> dict:
    (tmp / "real.onnx").write_text("keep")
    try:
        os.symlink(tmp / "real.onnx", tmp / "link.onnx")
    except OSError as exc:
        pytest.skip(f"no symbolic link here: {exc}")
    return {}


def _run(tmp: Path, **changes) -> dict:
    from hwnas.search.config import RunConfig
    from hwnas.search.rundir import RunDir

    run = RunDir.create(tmp / "run", RunConfig.from_json(CONFIG))
    # one measured and trained architecture: the run has used its store and profile
    (run.path / "state.json").write_text(json.dumps({
        "round": 1, "verified": [{"arch": ARCH, "accuracy": 0.5, "latency_ms": 0.5, "round": 0}],
        "measured": [{"arch": ARCH, "latency_ms": 0.5, "round": 0, "measured": True}]}))
    if changes:
        config = json.loads((run.path / "config.json").read_text())
        (run.path / "config.json").write_text(json.dumps({**config, **changes}))
    return {"run": str(run.path)}


def _with_store(values: dict) -> dict:
    """The run's recorded evaluation store made (empty): only its profile is gone."""
    from hwnas.search.rundir import RunDir
    from hwnas.training.store import EvalStore

    with EvalStore(RunDir.open(values["run"]).config.store) as store:
        len(store)
    return values


def _foreign(tmp: Path) -> dict:
    _nb201_tables(tmp)
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("years of work")
    return {}


def _none(tmp: Path) -> dict:
    return {}


SETUPS = {"fifo": _fifo, "device": _device, "link": _link, "run": _run, "foreign": _foreign, "none": _none,
          "run_gone_store": lambda tmp: _run(tmp, store=str(tmp / "gone.sqlite")),
          "run_gone_profiles": lambda tmp: _with_store(_run(tmp, profiles_dir=str(tmp / "nowhere"))),
          "fifo_tables": lambda tmp: {**_nb201_tables(tmp), **_fifo(tmp)},
          "run_tables": lambda tmp: {**_nb201_tables(tmp), **_run(tmp)}}

#: (id, setup, args, exit code, text of the one error line)
CASES = [
    ("onnx-into-fifo", "fifo", ["onnx", ARCH, "-o", "{tmp}/pipe"], 1, "a FIFO"),
    ("onnx-into-device", "device", ["onnx", ARCH, "-o", "{tmp}/null"], 1, "a device"),
    ("onnx-through-link", "link", ["onnx", ARCH, "-o", "{tmp}/link.onnx"], 1, "symbolic link"),
    ("onnx-into-device-forced", "device", ["onnx", ARCH, "-o", "{tmp}/null", "--force"], 1, "a device"),
    ("export-over-run-state", "run", ["export", "{run}", "-o", "{run}/state.json"], 1, "belongs to the run folder"),
    ("export-into-fifo", "fifo", ["export", "--arch", ARCH, "-o", "{tmp}/pipe"], 1, "a FIFO"),
    ("export-over-own-dataset", "foreign", ["export", "--arch", ARCH, "--dataset", "{tmp}/acc.csv", "-o",
                                            "{tmp}/acc.csv"], 1, "one of this command's inputs"),
    ("report-over-run-state", "run", ["report", "{run}", "-o", "{run}/state.json"], 1, "belongs to the run folder"),
    ("report-over-run-config", "run", ["report", "{run}", "-o", "{run}/config.json"], 1, "belongs to the run"),
    ("report-over-run-folder", "run", ["report", "{run}", "-o", "{run}"], 2, "is a directory"),
    ("report-into-device", "device", ["report", "{tmp}", "-o", "{tmp}/null"], 1, "a device"),
    ("report-through-link", "link", ["report", "{tmp}", "-o", "{tmp}/link.onnx"], 1, "symbolic link"),
    ("search-into-foreign-folder", "foreign", ["search", *TABLE_SEARCH, "--max-trainings", "3", "--run-dir",
                                               "{tmp}/mine"], 1, "non-empty folder that is not a run folder"),
    ("search-into-fifo", "fifo_tables", ["search", *TABLE_SEARCH, "--run-dir", "{tmp}/pipe"], 1, "not a folder"),
    ("benchmark-into-foreign-folder", "foreign", ["benchmark", *TABLE_SEARCH, "--max-trainings", "3", "--seeds",
                                                  "1", "--controllers", "random", "--out", "{tmp}/mine"], 1,
     "not a benchmark folder"),
    ("benchmark-into-run-folder", "run_tables", ["benchmark", *TABLE_SEARCH, "--max-trainings", "3", "--seeds", "1",
                                          "--out", "{run}"], 1, "is a run folder, not a benchmark folder"),
    ("supernet-into-foreign-folder", "foreign", ["supernet", "train", "--epochs", "1", "-o", "{tmp}/mine"], 1,
     "not a supernet folder"),
    ("resume-with-store-gone", "run_gone_store", ["search", "--resume", "{run}"], 1, "never starts a fresh one"),
    ("resume-with-profiles-gone", "run_gone_profiles", ["search", "--resume", "{run}"], 1, "device profile"),
]


@pytest.mark.parametrize("case_id, setup, args, code, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_output_is_one_clear_line(cli, tmp_path, monkeypatch, case_id, setup, args, code, needle):
    monkeypatch.chdir(tmp_path)
    values = {"tmp": str(tmp_path), **SETUPS[setup](tmp_path)}
    assert_refused(cli, tmp_path, *[a.format(**values) for a in args], code=code, needle=needle)


def test_force_writes_through_a_link_and_keeps_it(cli, tmp_path):
    _link(tmp_path)
    result = cli("onnx", ARCH, "-o", tmp_path / "link.onnx", "--force")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "link.onnx").is_symlink()
    assert (tmp_path / "real.onnx").read_bytes()[:4] != b"keep"


def test_a_new_report_beside_a_run_is_allowed(cli, tmp_path):
    from hwnas.io import check_output_file

    paths = _run(tmp_path)
    assert check_output_file(Path(paths["run"]) / "report.html") == Path(paths["run"]) / "report.html"
    assert check_output_file(tmp_path / "new" / "deeper" / "m.onnx").name == "m.onnx"


def test_atomic_writes_never_replace_a_fifo(tmp_path):
    from hwnas.errors import HwnasError
    from hwnas.io import atomic_write_text

    _fifo(tmp_path)
    with pytest.raises(HwnasError, match="a FIFO"):
        atomic_write_text(tmp_path / "pipe", "x")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_an_evaluation_store_is_never_a_fifo(tmp_path):
    from hwnas.training.store import EvalStore, StoreError

    _fifo(tmp_path)
    with pytest.raises(StoreError, match="FIFO"):
        EvalStore(tmp_path / "pipe")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_owned_names_follow_the_folders_code():
    """hwnas/io.py cannot import the folders' modules (it is below them): their file names are repeated there
    and checked here."""
    from hwnas import locks
    from hwnas.io import OWNED_NAMES
    from hwnas.profiling import store
    from hwnas.search import rundir, tracking
    from hwnas.supernet import folder

    assert {rundir.CONFIG_FILE, rundir.STATE_FILE, tracking.MLFLOW_FILE, locks.LOCK_FILE, locks.OWNER_FILE} <= set(
        OWNED_NAMES["run folder"])
    assert {folder.META, folder.CHECKPOINT, folder.WEIGHTS} <= set(OWNED_NAMES["supernet folder"])
    assert {store.DEVICE_FILE, store.MEASUREMENTS_FILE} <= set(OWNED_NAMES["profile"])
