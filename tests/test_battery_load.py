"""Issue 34, item 2: everything read is validated. A tampered run folder, store or profile is one ``Error:`` line
naming the file and the field, never a traceback or a silent accept, and nothing in the folder changes."""

from __future__ import annotations

import json
import sqlite3

import pytest

from battery import assert_one_clear_line, assert_refused, assert_unchanged, snapshot
from fault_cases import ARCH, SETUPS

GOOD = {"arch": ARCH, "accuracy": 0.5, "latency_ms": 0.5, "round": 0}


def _state(**changes):
    state = {"round": 1, "verified": [GOOD], "measured": [{"arch": ARCH, "latency_ms": 0.5, "round": 0}]}
    return {**state, **changes}


def _tampered_run(tmp, state):
    values = SETUPS["run"](tmp)
    (tmp / "run" / "state.json").write_text(json.dumps(state))
    return values


STATES = [
    ("accuracy-7", _state(verified=[{**GOOD, "accuracy": 7.0}]), "verified[0].accuracy is 7.0"),
    ("round-negative", _state(round=-5), "round is -5"),
    ("round-huge", _state(round=10**12), "round is 1000000000000"),
    ("finished-text", _state(finished="yes"), "finished is 'yes'"),
    ("elapsed-nan", {**_state(), "elapsed_s": float("nan")}, "elapsed_s is nan"),
    ("verified-missing", {"round": 1, "measured": []}, "'verified' is missing"),
    ("history-garbage", _state(verified=[GOOD, "garbage"]), "verified[1] is 'garbage'"),
    ("entry-round-text", _state(verified=[{**GOOD, "round": "x"}]), "verified[0].round"),
]


@pytest.mark.parametrize("state, needle", [s[1:] for s in STATES], ids=[s[0] for s in STATES])
def test_a_tampered_state_is_refused_on_resume(cli, tmp_path, monkeypatch, state, needle):
    monkeypatch.chdir(tmp_path)
    values = _tampered_run(tmp_path, state)
    result = assert_refused(cli, tmp_path, "search", "--resume", values["run"], "--max-trainings", "9", code=1,
                            needle=needle)
    assert "state.json" in result.stderr


def test_unknown_state_keys_are_ignored_with_a_warning(tmp_path, caplog):
    from hwnas.search.rundir import RunDir

    values = _tampered_run(tmp_path, _state(newer_key=1))
    assert RunDir.open(values["run"]).load_state(resuming=True).round == 1
    assert "newer_key" in caplog.text


def test_a_history_without_round_is_one_line_on_report(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = _tampered_run(tmp_path, _state())
    (tmp_path / "run" / "history.csv").write_text("trainings_used\n3\n")
    assert_refused(cli, tmp_path, "report", values["run"], "-o", str(tmp_path / "r.html"), code=1,
                   needle="history.csv is corrupt: it has no 'round' column")


def test_a_new_run_records_its_store_as_an_absolute_path(tmp_path, monkeypatch):
    from fault_cases import CONFIG

    from hwnas.search.config import RunConfig
    from hwnas.search.rundir import RunDir

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HWNAS_STORE", raising=False)
    RunDir.create(tmp_path / "run", RunConfig.from_json(CONFIG))
    monkeypatch.chdir("/")
    assert RunDir.open(tmp_path / "run").config.store == str((tmp_path / "evals.sqlite").resolve())


def _store_with(tmp, **values):
    from hwnas.training.store import EvalStore

    path = tmp / "store.sqlite"
    EvalStore(path).close()
    conn = sqlite3.connect(path)
    columns = [c[1] for c in conn.execute("PRAGMA table_info(evals)").fetchall()]
    row = {"space": "mobilenet", "arch": ARCH, "dataset": "digits", "recipe_hash": "h", "seed": 0, "epochs": 1,
           "data_fraction": 1.0, "arch_id": "a", "val_accuracy": 0.5, "wall_time_s": 1.0, "source": "train",
           "recipe": "{}", "created_at": 0.0, "hwnas_version": "0", **values}
    # a table made before the CHECK constraint (or edited): the row goes in as it is
    conn.execute("PRAGMA ignore_check_constraints = 1")
    conn.execute(f"INSERT INTO evals ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert set(columns) >= set(row)
    return path


@pytest.mark.parametrize("values", [{"val_accuracy": 7.0}, {"val_accuracy": -3.0}, {"epochs": "many"},
                                    {"params": "lots"}], ids=["acc-7", "acc-neg", "epochs-text", "params-text"])
def test_invalid_store_rows_are_skipped_with_one_warning(cli, tmp_path, monkeypatch, values, caplog):
    monkeypatch.chdir(tmp_path)
    path = _store_with(tmp_path, **values)
    before = snapshot(tmp_path)
    result = cli("evals", "--store", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert "skipping 1 invalid record" in result.stderr + caplog.text
    assert_unchanged(before, snapshot(tmp_path))


def test_an_invalid_store_row_is_refused_on_lookup(tmp_path):
    from hwnas.training.store import EvalKey, EvalStore, StoreError

    path = _store_with(tmp_path, val_accuracy=7.0)
    with EvalStore(path) as store, pytest.raises(StoreError, match="val_accuracy 7.0 is not a fraction"):
        store.get(EvalKey("mobilenet", ARCH, "digits", "h", 0, 1, 1.0))


@pytest.mark.parametrize("median, needle", [(1e300, "outside"), (1e-300, "outside")])
def test_a_profile_latency_out_of_range_is_refused(cli, tmp_path, monkeypatch, median, needle):
    from fault_cases import _profile

    monkeypatch.chdir(tmp_path)
    _profile(tmp_path, median)
    result = assert_refused(cli, tmp_path, "profile", "show", "dev", "--profiles-dir", str(tmp_path / "profiles"),
                            code=1, needle=needle)
    assert "measurements.jsonl: line 1" in result.stderr


def test_latency_table_rows_out_of_range_are_skipped(tmp_path):
    from hwnas.profiling.tables import parse_latency_table
    from hwnas.spaces import create_space

    space = create_space("nb201")
    archs = [a.string for a in space.enumerate()][:3]
    rows, problems = parse_latency_table(f"arch,latency_ms\n{archs[0]},1e308\n{archs[1]},1e-300\n{archs[2]},0.5\n",
                                         space)
    assert [r.arch.string for r in rows] == [archs[2]]
    assert len(problems) == 2 and all("outside" in str(p) for p in problems)


def _model_with(tmp, *, metadata=None, external=False):
    """A small exported ONNX model (untrained), its metadata changed, or one weight moved to an external file."""
    import onnx
    from onnx import external_data_helper

    from hwnas.onnx_export import export_arch
    from hwnas.spaces import create_space

    path = tmp / "m.onnx"
    space = create_space("mobilenet")
    export_arch(space, space.parse(ARCH), (1, 8, 8), 10, path)
    model = onnx.load(str(path))
    for key, value in (metadata or {}).items():
        entry = next((p for p in model.metadata_props if p.key == key), None) or model.metadata_props.add()
        entry.key, entry.value = key, value
    if external:
        tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        external_data_helper.set_external_data(tensor, location="../x")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("metadata, external, needle", [
    ({"split_seed": "-1"}, False, "'split_seed' is '-1'"),
    ({"test_accuracy": "nan"}, False, "'test_accuracy' is 'nan'"),
    ({"latency_ms": "1e300"}, False, "'latency_ms' is '1e300'"),
    ({}, True, "external files"),
], ids=["split-seed-negative", "test-accuracy-nan", "latency-huge", "external-data"])
def test_a_tampered_model_is_one_line_on_evaluate(cli, tmp_path, metadata, external, needle):
    path = _model_with(tmp_path, metadata=metadata, external=external)
    assert_refused(cli, tmp_path, "evaluate", path, "--dataset", "digits", code=1, needle=needle)


def test_a_predictor_file_linked_elsewhere_is_refused_without_echoing_it(cli, tmp_path):
    import os

    secret = tmp_path / "secret.txt"
    secret.write_text("Xsecret\n")

    def link(folder):
        (folder / "model_0.json").unlink()
        os.symlink(secret, folder / "model_0.json")

    values = _linked_predictor(tmp_path, link)
    result = cli("predict", values["arch"], "--predictor", "p", "--predictors-dir", tmp_path / "predictors")
    assert_one_clear_line(result, 1, "not a regular file")
    assert "X" not in result.stderr.split("Error:", 1)[1].replace("XGBoost", "")  # nothing of the file shown


def _linked_predictor(tmp, tamper):
    from fault_cases import _predictor

    return _predictor(tmp, tamper=tamper)


def test_a_run_named_like_a_formula_is_reported(cli, tmp_path):
    """matplotlib parses $...$ as mathtext: a run folder so named is shown literally, not a traceback."""
    import shutil

    values = SETUPS["run"](tmp_path)
    odd = tmp_path / "a$\\frac{x$b"
    shutil.move(values["run"], odd)
    (odd / "state.json").write_text(json.dumps(_state()))
    result = cli("report", odd, "-o", tmp_path / "r.html")
    assert result.exit_code == 0, result.stderr
    assert "a$\\frac{x$b" in (tmp_path / "r.html").read_text()
