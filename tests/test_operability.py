"""Operable from scripts and terminals: ``--json`` on search, export and evaluate (one JSON document on stdout,
progress on stderr), ``-v/-vv`` raising only hwnas's own loggers, and files that honour the umask."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from hwnas.cli.common import setup_logging
from hwnas.io import atomic_write_json, file_mode

from deploy_helpers import TINY  # noqa: E402


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _modes(folder):
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "state.json", {"a": 1})
        assert file_mode() == mode
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "state.json").stat().st_mode) == mode
    assert json.loads((tmp_path / "state.json").read_text()) == {"a": 1}


def test_search_json_is_one_document_and_run_files_are_readable(cli, tmp_path, umask_022):
    result = cli("search", "--latency-budget", "10ms", "--max-trainings", "3", "--initial-trainings", "2",
                 "--epochs", "1", "--archs-per-round", "200", "--profile-samples", "10", "--candidates-per-round",
                 "1", "--run-dir", tmp_path / "run", "--profiles-dir", tmp_path / "profiles", "--store",
                 tmp_path / "evals.sqlite", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert document["run_dir"] == str(tmp_path / "run") and document["best"] == saved["best"]
    assert document["trainings_used"] == 3 and document["best"]["latency_ms"] <= 10
    assert "round 1 done" in result.stderr and "round 1 done" not in result.stdout  # progress on stderr
    # Output options are free on resume (not settings of the run); a finished run resumes to its answer.
    again = cli("search", "--resume", tmp_path / "run", "--json", "--no-progress", "--profiles-dir",
                tmp_path / "profiles", "--store", tmp_path / "evals.sqlite")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["best"] == saved["best"]
    modes = _modes(tmp_path / "run") | _modes(tmp_path / "profiles")
    assert {"config.json", "result.json", "state.json", "pareto.png"} <= set(modes)
    assert {name: mode for name, mode in modes.items() if mode != 0o644} == {}
    # folders too (a predictor's folder is staged with mkdtemp, which makes it 0700): a teammate can read them
    folders = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "run").rglob("*")
               if p.is_dir()}
    assert any(name.endswith("accuracy") for name in folders)
    assert {name: mode for name, mode in folders.items() if mode != 0o755} == {}


@pytest.mark.slow
def test_export_and_evaluate_json(cli, tmp_path, umask_022):
    out = tmp_path / "m.onnx"
    result = cli("export", "-o", out, "--arch", TINY, "--dataset", "digits", "--epochs", "1", "--train-threads",
                 "1", "--json")
    assert result.exit_code == 0, result.stderr
    exported = json.loads(result.stdout)
    assert exported["model"]["path"] == str(out) and exported["weights"] == str(tmp_path / "m.pt")
    assert exported["preprocess"]["output"] == "logits" and exported["arch"] == TINY
    assert "epoch 1/1" in result.stderr and exported["quantized"] is None
    assert _modes(tmp_path) == {"m.onnx": 0o644, "m.pt": 0o644}

    evaluated = cli("evaluate", out, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    accuracy = json.loads(evaluated.stdout)["accuracy"]
    assert accuracy["reproduced"] is True and accuracy["comparable"] is True
    assert accuracy["test_accuracy"] == pytest.approx(exported["model"]["test_accuracy"], abs=1 / accuracy["total"])
    assert accuracy["preprocess"] == exported["preprocess"]

    latency = cli("evaluate", out, "--latency-only", "--json")
    assert latency.exit_code == 0, latency.stderr
    document = json.loads(latency.stdout)
    assert document["accuracy"] is None and document["latency"]["median_ms"] > 0
    assert document["latency"]["provider"] == "cpu" and document["latency"]["within_budget"] is None


def test_verbosity_raises_only_hwnas_loggers(capsys):
    try:
        setup_logging(2)
        logging.getLogger("PIL.PngImagePlugin").debug("STREAM b'IHDR' 16 13")
        logging.getLogger("matplotlib.font_manager").info("findfont: scoring")
        logging.getLogger("hwnas.search.loop").debug("hwnas debug line")
        logging.getLogger("PIL.Image").warning("a real warning")
        err = capsys.readouterr().err
        assert "hwnas debug line" in err and "a real warning" in err
        assert "IHDR" not in err and "findfont" not in err
        setup_logging(0)
        logging.getLogger("hwnas.search.loop").info("quiet by default")
        assert "quiet by default" not in capsys.readouterr().err
    finally:
        setup_logging(0)


def test_search_progress_bar_counts_trainings_and_shows_the_best(capsys, monkeypatch):
    import sys

    from hwnas.cli.search_progress import SearchBar, progress_wanted

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert not progress_wanted(no_progress=False, as_json=True)  # not a terminal: no bar
    from hwnas.search.events import RoundDone, Trained, TrainingStarted
    from hwnas.search.state import Verified

    bar = SearchBar(5, 10.0)
    bar(TrainingStarted(arch="a", round=1, trainings=2))
    record = Verified(arch="a", accuracy=0.9, latency_ms=0.05, round=1)
    bar(Trained(record=record, best=record, measurements=3))
    bar.echo("  a progress line")
    bar(RoundDone(round=1, trainings_used=4, measurements_used=5, new_measured=2, new_over_budget=0, row={}))
    bar.close()
    err = capsys.readouterr().err
    assert "4/5" in err and "best 0.9000 @ 50us (budget 10ms)" in err and "a progress line" in err
