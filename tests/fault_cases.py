"""The bad-input battery (issue 15) as data: every case is a command line run against a prepared folder, and
the class of outcome it must have. Used by ``tests/test_fault_battery.py`` (part of the suite) and by
``benchmarks/faults.py`` (prints the counts).

Each case: ``(id, setup, args, expected exit code, text the one error line must contain)``. ``setup`` names a
function of :data:`SETUPS` that prepares ``tmp`` (a fresh folder) and returns the placeholders of ``args``
(``{tmp}`` is always there). Exit 2 is a usage error (a bad flag or value), exit 1 a refused input or file.
"""

from __future__ import annotations

import json
from pathlib import Path

ARCH = "16:k3e1/24:k3e1/32:k3e1/48:k3e1"
BIG = str(2**63)

CONFIG = {"space": "mobilenet", "space_options": {}, "dataset": "digits", "budget_ms": 1.0, "max_trainings": 3,
          "input_shape": [1, 8, 8], "num_classes": 10, "controller": "random", "reward": "hard"}


def _run(tmp: Path, *, config=None, state=None, history=False) -> dict:
    from hwnas.search.config import RunConfig
    from hwnas.search.rundir import RunDir

    run = RunDir.create(tmp / "run", RunConfig.from_json(CONFIG))
    if config is not None:
        (run.path / "config.json").write_text(json.dumps({"schema_version": 2, **config}))
    if state is not None:
        (run.path / "state.json").write_text(json.dumps(state))
    if history:
        (run.path / "history.csv").write_text("round,trainings_used\n1,3\n")
    return {"run": str(run.path)}


def _accuracy_csv(tmp: Path) -> dict:
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_3x3~0|skip_connect~1|skip_connect~2|"
    (tmp / "acc.csv").write_text(f"arch,accuracy\n{arch},0.9\n")
    return {}


def _corrupt_store(tmp: Path) -> dict:
    (tmp / "store.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x07" * 5000)
    return {}


def _corrupt_store_page(tmp: Path) -> dict:
    """A valid hwnas store of 400 records whose third page is overwritten: it opens, then fails on reading."""
    import sqlite3

    from hwnas.training.store import EvalStore

    path = tmp / "store.sqlite"
    EvalStore(path).close()
    conn = sqlite3.connect(path)
    columns = conn.execute("PRAGMA table_info(evals)").fetchall()
    names = [c[1] for c in columns]

    def value(column, i):
        kind = column[2].upper()
        return "{}" if column[1] == "recipe" else i if "INT" in kind else 0.5 if "REAL" in kind else f"x{i}" * 20

    conn.executemany(f"INSERT INTO evals ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                     [[value(c, i) for c in columns] for i in range(400)])
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page:3 * page + 200] = b"\xff" * 200
    path.write_bytes(bytes(data))
    return {}


def _nb201_tables(tmp: Path) -> dict:
    """Synthetic accuracy and latency tables over all nb201 cells (a table search runs in seconds)."""
    from hwnas.spaces import create_space

    strings = [a.string for a in create_space("nb201").enumerate()]
    (tmp / "acc.csv").write_text("arch,accuracy\n" + "".join(
        f"{s},{0.5 + 0.07 * s.count('conv_3x3') + 0.03 * s.count('conv_1x1')}\n" for s in strings))
    (tmp / "lat.csv").write_text("arch,latency_ms\n" + "".join(
        f"{s},{0.2 + 0.12 * s.count('conv_3x3') + 0.04 * s.count('conv_1x1')}\n" for s in strings))
    return {}


TABLE_SEARCH = ["--space", "nb201", "--accuracy-table", "{tmp}/acc.csv", "--latency-table", "{tmp}/lat.csv",
                "--latency-budget", "0.7ms", "--initial-trainings", "3", "--candidates-per-round", "2",
                "--archs-per-round", "60", "--profile-samples", "20"]


def _benchmark_corrupt_prior(tmp: Path) -> dict:
    _nb201_tables(tmp)
    (tmp / "b").mkdir()
    (tmp / "b" / "latency_prior.json").write_text('{"known": [["x", "fast"]]}')
    return {}


def _run_empty_checkpoint(tmp: Path) -> dict:
    """A finished 6-training table search (PPO learned twice) whose controller checkpoint is then emptied."""
    from click.testing import CliRunner

    from hwnas.cli import main

    _nb201_tables(tmp)
    args = ["search", *[a.format(tmp=tmp) for a in TABLE_SEARCH], "--max-trainings", "6", "--profiles-dir",
            str(tmp / "profiles"), "--run-dir", str(tmp / "run")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (tmp / "run" / "controller.ckpt").write_bytes(b"")
    return {"run": str(tmp / "run")}


def _predictor(tmp: Path, *, tamper) -> dict:
    """A fitted accuracy predictor ``predictors/p``, then ``tamper(folder)``."""
    import numpy as np

    from hwnas.predictors import AccuracyPredictor
    from hwnas.spaces import create_space

    space, rng = create_space("nb201"), np.random.default_rng(0)
    archs = [space.sample(rng).string for _ in range(20)]
    folder = tmp / "predictors" / "p"
    AccuracyPredictor(space="nb201", ensemble_size=2, n_estimators=10).fit(archs, rng.random(20)).save(folder)
    tamper(folder)
    return {"arch": archs[0]}


def _edit_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, **changes}))


def _profile(tmp: Path, median) -> dict:
    folder = tmp / "profiles" / "dev"
    folder.mkdir(parents=True)
    from hwnas.profiling import Conditions, host_fingerprint

    (folder / "device.json").write_text(json.dumps(host_fingerprint("dev", Conditions())))
    record = {"space": "mobilenet", "input_shape": [1, 8, 8], "arch": ARCH, "median_ms": median}
    (folder / "measurements.jsonl").write_text(json.dumps(record) + "\n")
    return {}


def _supernet_meta(tmp: Path, text: str) -> dict:
    (tmp / "sn").mkdir()
    (tmp / "sn" / "meta.json").write_text(text)
    return {}


SETUPS = {
    "none": lambda tmp: {},
    "run": lambda tmp: _run(tmp),
    "run_no_budget": lambda tmp: _run(tmp, config={k: v for k, v in CONFIG.items() if k != "budget_ms"}),
    "run_text_budget": lambda tmp: _run(tmp, config={**CONFIG, "budget_ms": "fast"}),
    "run_state_text_accuracy": lambda tmp: _run(tmp, state={"verified": [{"arch": ARCH, "accuracy": "high",
                                                                           "latency_ms": 0.5, "round": 0}]}),
    "run_state_missing": lambda tmp: _run(tmp, history=True),
    "corrupt_store": _corrupt_store,
    "corrupt_store_page": _corrupt_store_page,
    "benchmark_corrupt_prior": _benchmark_corrupt_prior,
    "run_empty_checkpoint": _run_empty_checkpoint,
    "predictor_garbage_model": lambda tmp: _predictor(
        tmp, tamper=lambda folder: (folder / "model_0.json").write_text("{garbage")),
    "predictor_edited_kind": lambda tmp: _predictor(tmp, tamper=lambda folder: _edit_meta(folder, kind="latency")),
    "predictor_edited_shape": lambda tmp: _predictor(tmp, tamper=lambda folder: _edit_meta(folder,
                                                                                           input_shape=[3, 32, 32])),
    "accuracy_csv": _accuracy_csv,
    "profile_text_median": lambda tmp: _profile(tmp, "fast"),
    "profile_nan_median": lambda tmp: _profile(tmp, float("nan")),
    "supernet_corrupt_meta": lambda tmp: _supernet_meta(tmp, "{not json"),
    "supernet_foreign_meta": lambda tmp: _supernet_meta(tmp, json.dumps({"format": "hwnas-supernet",
                                                                          "format_version": 1, "space": 3})),
}

CASES = [
    # seeds: negative or beyond 64 bits
    ("sample-negative-seed", "none", ["sample", "--seed", "-1"], 2, "--seed"),
    ("sample-huge-seed", "none", ["sample", "--seed", str(2**64)], 2, "--seed"),
    ("profile-negative-seed", "none", ["profile", "--device", "d", "--samples", "1", "--seed", "-1"], 2, "--seed"),
    ("datasets-negative-seed", "none", ["datasets", "--seed", "-1"], 2, "--seed"),
    ("train-negative-seed", "none", ["train", ARCH, "--seed", "-1", "--no-store"], 2, "--seed"),
    ("train-seed-beyond-sqlite", "none", ["train", ARCH, "--seed", BIG, "--store", "{tmp}/s.sqlite"], 2, "--seed"),
    ("export-negative-seed", "none", ["export", "--arch", ARCH, "-o", "{tmp}/m.onnx", "--seed", "-1"], 2, "--seed"),
    ("evaluate-negative-split-seed", "none", ["evaluate", "{tmp}/m.onnx", "--split-seed", "-1"], 2,
     "--split-seed"),
    ("search-negative-seed", "none", ["search", "--latency-budget", "1ms", "--seed", "-1"], 2, "--seed"),
    # space options
    ("nb201-zero-channels", "none", ["sample", "--space", "nb201", "-O", "channels=0"], 2, "channels"),
    ("nb201-negative-channels", "none", ["sample", "--space", "nb201", "-O", "channels=-4"], 2, "channels"),
    ("nb201-negative-cells", "none", ["sample", "--space", "nb201", "-O", "cells_per_stage=-1"], 2,
     "cells_per_stage"),
    ("nb201-fractional-channels", "none", ["sample", "--space", "nb201", "-O", "channels=2.5"], 2, "whole number"),
    # sizes beyond a stated limit instead of running out of memory
    ("onnx-huge-input", "none", ["onnx", ARCH, "--input-shape", "3x100000x100000", "-o", "{tmp}/x.onnx"], 2,
     "out of range"),
    ("profile-huge-input", "none", ["profile", "--device", "d", "--samples", "1", "--input-shape",
                                    "3x100000x100000"], 2, "out of range"),
    ("profile-huge-classes", "none", ["profile", "--device", "d", "--samples", "1", "--num-classes",
                                      "1000000000"], 2, "--num-classes"),
    # typed values
    ("recipe-text-lr", "none", ["train", ARCH, "-R", "lr=abc", "--no-store"], 1, "lr='abc' must be a number"),
    ("recipe-text-epochs", "none", ["train", ARCH, "-R", "epochs=many", "--no-store"], 1, "epochs"),
    ("explore-nan", "none", ["search", "--latency-budget", "1ms", "--explore", "nan"], 2, "finite"),
    ("explore-inf", "none", ["search", "--latency-budget", "1ms", "--explore", "inf"], 2, "finite"),
    ("budget-infinite", "none", ["search", "--latency-budget", "1e400ms"], 2, "largest budget"),
    # corrupt or missing files
    ("evals-corrupt-store", "corrupt_store", ["evals", "--store", "{tmp}/store.sqlite"], 1,
     "not a usable evaluation store"),
    ("evals-corrupt-store-page", "corrupt_store_page", ["evals", "--store", "{tmp}/store.sqlite"], 1,
     "evaluation store is corrupt"),
    ("train-into-corrupt-store-page", "corrupt_store_page",
     ["train", ARCH, "-R", "epochs=1", "--store", "{tmp}/store.sqlite"], 1, "evaluation store is corrupt"),
    ("benchmark-corrupt-latency-prior", "benchmark_corrupt_prior",
     ["benchmark", *TABLE_SEARCH, "--controllers", "random", "--seeds", "1", "--max-trainings", "4",
      "--out", "{tmp}/b"], 1, "latency_prior.json is corrupt"),
    ("resume-empty-checkpoint", "run_empty_checkpoint", ["search", "--resume", "{run}", "--max-trainings", "8"], 1,
     "controller.ckpt"),
    ("predict-with-garbage-model-file", "predictor_garbage_model",
     ["predict", "{arch}", "--predictor", "p", "--predictors-dir", "{tmp}/predictors"], 1, "cannot load"),
    ("predict-with-edited-kind", "predictor_edited_kind",
     ["predict", "{arch}", "--predictor", "p", "--predictors-dir", "{tmp}/predictors"], 1, "inconsistent"),
    ("predict-with-edited-input-shape", "predictor_edited_shape",
     ["predict", "{arch}", "--predictor", "p", "--predictors-dir", "{tmp}/predictors"], 1, "inconsistent"),
    ("predictors-list-missing-folder", "none", ["predictors", "list", "--predictors-dir", "{tmp}/nope"], 1,
     "no predictors folder"),
    ("profile-text-median", "profile_text_median", ["profile", "show", "dev", "--profiles-dir", "{tmp}/profiles"],
     1, "median_ms 'fast'"),
    ("profile-nan-median", "profile_nan_median", ["profile", "show", "dev", "--profiles-dir", "{tmp}/profiles"],
     1, "median_ms nan"),
    ("latency-table-is-an-accuracy-table", "accuracy_csv",
     ["profile", "--device", "t", "--space", "nb201", "--latency-table", "{tmp}/acc.csv", "--input-shape", "3x32x32",
      "--profiles-dir", "{tmp}/profiles"], 1, "not a latency table"),
    ("search-latency-table-is-an-accuracy-table", "accuracy_csv",
     ["search", "--space", "nb201", "--latency-table", "{tmp}/acc.csv", "--accuracy-table", "{tmp}/acc.csv",
      "--latency-budget", "1ms", "--profiles-dir", "{tmp}/profiles"], 1, "not a latency table"),
    # tampered run folders and resume
    ("resume-config-without-budget", "run_no_budget", ["search", "--resume", "{run}"], 1, "missing 'budget_ms'"),
    ("export-config-without-budget", "run_no_budget", ["export", "{run}", "-o", "{tmp}/m.onnx"], 1,
     "missing 'budget_ms'"),
    ("resume-config-text-budget", "run_text_budget", ["search", "--resume", "{run}"], 1, "budget_ms must be"),
    ("resume-state-text-accuracy", "run_state_text_accuracy", ["search", "--resume", "{run}"], 1,
     "numeric accuracy"),
    ("resume-state-missing", "run_state_missing", ["search", "--resume", "{run}"], 1, "state.json is missing"),
    ("resume-with-other-controller", "run", ["search", "--resume", "{run}", "--controller", "ppo"], 2,
     "drop --controller"),
    ("resume-with-other-budget", "run", ["search", "--resume", "{run}", "--latency-budget", "5ms"], 2,
     "drop --latency-budget"),
    # supernets
    ("supernet-eval-missing", "none", ["supernet", "eval", ARCH, "--supernet", "{tmp}/nope"], 1,
     "not a supernet folder"),
    ("supernet-eval-corrupt-meta", "supernet_corrupt_meta", ["supernet", "eval", ARCH, "--supernet", "{tmp}/sn"], 1,
     "is corrupt"),
    ("supernet-eval-foreign-meta", "supernet_foreign_meta", ["supernet", "eval", ARCH, "--supernet", "{tmp}/sn"],
     1, "'space' is missing or not a str"),
    ("supernet-train-over-corrupt-meta", "supernet_corrupt_meta",
     ["supernet", "train", "--epochs", "1", "-o", "{tmp}/sn"], 1, "is corrupt"),
    ("supernet-eval-bad-score-images", "none", ["supernet", "eval", ARCH, "--supernet", "{tmp}/nope",
                                                 "--score-images", "some"], 2, "--score-images"),
    ("supernet-bad-sampling", "none", ["supernet", "train", "--sampling", "greedy"], 2, "--sampling"),
    ("supernet-too-many-random", "none", ["supernet", "train", "--random-per-step", "99"], 2, "--random-per-step"),
    ("search-supernet-with-table", "accuracy_csv",
     ["search", "--space", "nb201", "--latency-budget", "1ms", "--estimator", "supernet", "--accuracy-table",
      "{tmp}/acc.csv"], 2, "needs trainings"),
    # names that would become paths
    ("predictor-name-traversal", "none", ["predictors", "fit", "latency", "--device", "d", "--name", "../victim",
                                          "--profiles-dir", "{tmp}/profiles"], 1, "predictor name"),
    ("device-name-traversal", "none", ["profile", "--device", "../victim", "--samples", "1",
                                       "--profiles-dir", "{tmp}/profiles"], 1, "device name"),
]
