"""``hwnas benchmark`` and table-driven search on a synthetic nb201 table with a known optimum."""

from __future__ import annotations

import csv
import json

import pytest

from hwnas.search.benchmark import BenchmarkError, run_benchmark
from hwnas.search.config import RunConfig
from hwnas.spaces import create_space

BUDGET_MS = 0.7


def accuracy_of(s: str) -> float:
    return round(0.5 + 0.07 * s.count("nor_conv_3x3") + 0.03 * s.count("nor_conv_1x1") - 0.02 * s.count("none"), 6)


def latency_of(s: str) -> float:
    return round(0.2 + 0.12 * s.count("nor_conv_3x3") + 0.04 * s.count("nor_conv_1x1") + 0.01 * s.count("avg_pool"),
                 6)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    strings = [a.string for a in create_space("nb201").enumerate()]
    (folder / "acc.csv").write_text("arch,accuracy\n" + "".join(f"{s},{accuracy_of(s)}\n" for s in strings))
    (folder / "lat.csv").write_text("arch,latency_ms\n" + "".join(f"{s},{latency_of(s)}\n" for s in strings))
    return folder / "acc.csv", folder / "lat.csv", strings


def config_for(acc, lat, **extra):
    settings = dict(space="nb201", budget_ms=BUDGET_MS, reward="hard", max_trainings=9, initial_trainings=4,
                    candidates_per_round=2, archs_per_round=200, explore=0.5, profile_samples=40,
                    accuracy_table=str(acc), latency_table=str(lat), mode="oneshot",
                    predictor_options={"ensemble_size": 2, "n_estimators": 40})
    return RunConfig(**{**settings, **extra}).resolved()


def test_harness_writes_curves_and_the_correct_regret(tables, tmp_path):
    acc, lat, strings = tables
    true_best = max(accuracy_of(s) for s in strings if latency_of(s) <= BUDGET_MS)
    out = tmp_path / "bench"
    payload = run_benchmark(config_for(acc, lat), controllers=["random", "reinforce"], seeds=[0, 1], out=out,
                            echo=lambda line: None)
    assert payload["true_best"]["accuracy"] == pytest.approx(true_best)
    assert latency_of(payload["true_best"]["arch"]) <= BUDGET_MS
    curves = json.loads((out / "curves.json").read_text())["curves"]
    assert set(curves) == {"random", "reinforce"} and set(curves["random"]) == {"0", "1"}
    for controller in curves:
        for seed in (0, 1):
            state = json.loads((out / "runs" / f"{controller}-s{seed}" / "state.json").read_text())
            assert len(state["verified"]) == 9
            # Recompute the curve from the truth: best table accuracy under the budget after each evaluation.
            best, expected = None, []
            for v in state["verified"]:
                assert v["accuracy"] == accuracy_of(v["arch"]) and v["latency_ms"] == latency_of(v["arch"])
                if latency_of(v["arch"]) <= BUDGET_MS:
                    best = max(best or 0.0, accuracy_of(v["arch"]))
                expected.append(best)
            run = curves[controller][str(seed)]
            assert run["best_accuracy"] == expected
            assert run["regret"] == pytest.approx([true_best - (b or 0.0) for b in expected])
            assert all(r >= -1e-12 for r in run["regret"]) and run["regret"] == sorted(run["regret"], reverse=True)
            # measured before trained: the counts of measurements rise with the trainings, none over budget
            assert run["measurements"] == [v["measurements_used"] for v in state["verified"]]
            assert run["measurements"] == sorted(run["measurements"]) and run["over_budget"] == [0] * 9
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert len(rows) == 2 * 2 * 9 and all(row["measurements"] != "" for row in rows)
    summary = json.loads((out / "summary.json").read_text())["summary"]
    at_end = {r["controller"]: r["median_regret"] for r in summary if r["evaluations"] == 9}
    assert all(r["share_trained_over_budget"] == 0 and r["median_measurements"] >= 1 for r in summary)
    for controller in curves:
        finals = sorted(curves[controller][s]["regret"][-1] for s in ("0", "1"))
        assert at_end[controller] == pytest.approx(sum(finals) / 2)
    assert (out / "curves.png").stat().st_size > 1000
    # Rerunning resumes: finished runs are not repeated; other settings in the same folder are refused.
    mtime = (out / "runs" / "random-s0" / "state.json").stat().st_mtime_ns
    run_benchmark(config_for(acc, lat), controllers=["random"], seeds=[0], out=out, echo=lambda line: None)
    assert (out / "runs" / "random-s0" / "state.json").stat().st_mtime_ns == mtime
    with pytest.raises(BenchmarkError, match="other settings"):
        run_benchmark(config_for(acc, lat, budget_ms=0.5), controllers=["random"], seeds=[0], out=out)


def test_benchmark_command_end_to_end(cli, tables, tmp_path):
    acc, lat, _ = tables
    result = cli("benchmark", "--space", "nb201", "--accuracy-table", acc, "--latency-table", lat,
                 "--latency-budget", "0.7ms", "--controllers", "evolution", "--max-trainings", "5", "--seeds", "1",
                 "--initial-trainings", "3", "--candidates-per-round", "2", "--archs-per-round", "100",
                 "--profile-samples", "30", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.stderr
    assert "true best under the budget" in result.output and "evolution" in result.output
    assert (tmp_path / "b" / "curves.csv").exists() and (tmp_path / "b" / "curves.png").exists()
    bad = cli("benchmark", "--space", "nb201", "--latency-budget", "1ms", "--controllers", "ppo,magic")
    assert bad.exit_code == 2 and "unknown controller 'magic'" in bad.stderr


def test_search_against_tables_progressively(cli, tables, tmp_path):
    acc, lat, _ = tables
    result = cli("search", "--space", "nb201", "--accuracy-table", acc, "--latency-table", lat,
                 "--latency-budget", "0.7ms", "--mode", "progressive", "--controller", "qlearning",
                 "--max-trainings", "6", "--initial-trainings", "3", "--candidates-per-round", "3",
                 "--archs-per-round", "200", "--profile-samples", "30", "--run-dir", tmp_path / "run",
                 "--store", tmp_path / "evals.sqlite")
    assert result.exit_code == 0, result.stderr
    outcome = json.loads((tmp_path / "run" / "result.json").read_text())
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["mode"] == "progressive" and config["device"] == "table-lat"
    assert outcome["trainings_used"] == 6 and outcome["best"]["latency_ms"] == latency_of(outcome["best"]["arch"])
    assert outcome["best"]["latency_ms"] <= 0.7
    both = cli("search", "--space", "nb201", "--latency-table", lat, "--device", "pi4", "--latency-budget", "1ms",
               "--run-dir", tmp_path / "run2")
    assert both.exit_code == 2 and "use one" in both.stderr


def test_a_start_that_failed_before_any_work_can_be_started_again(cli, tables, tmp_path):
    """A new search that fails before its first measurement leaves only config.json: the same --run-dir starts
    afresh instead of saying it holds a run (one that did any work, or is starting elsewhere, is refused)."""
    from hwnas.search.rundir import RunDir, RunDirError, lock_run_folder

    acc, lat, _ = tables
    args = ["search", "--space", "nb201", "--latency-budget", "0.7ms", "--max-trainings", "4",
            "--initial-trainings", "3", "--candidates-per-round", "2", "--archs-per-round", "60",
            "--profile-samples", "20", "--run-dir", tmp_path / "run", "--profiles-dir", tmp_path / "profiles"]
    failed = cli(*args, "--accuracy-table", acc, "--latency-table", acc)  # an accuracy table as latencies
    assert failed.exit_code == 1 and "not a latency table" in failed.stderr
    assert not (tmp_path / "run").exists()  # the tables are read before the run folder is made
    # a start that failed after making its folder (a device out of reach, Ctrl-C) leaves only config.json
    RunDir.create(tmp_path / "run", RunConfig(budget_ms=1.0, space="nb201", input_shape=(1, 8, 8), num_classes=10))
    assert (tmp_path / "run" / "config.json").exists() and not RunDir.open(tmp_path / "run").has_progress()
    with lock_run_folder(tmp_path / "run"):  # another process starting this run: refused, config untouched
        with pytest.raises(RunDirError, match="in use"):
            RunDir.create(tmp_path / "run", RunConfig(budget_ms=1.0, space="nb201", input_shape=(1, 8, 8),
                                                      num_classes=10))
    result = cli(*args, "--accuracy-table", acc, "--latency-table", lat)
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["latency_table"] == str(lat)
    again = cli(*args, "--accuracy-table", acc, "--latency-table", lat)
    assert again.exit_code == 1 and "already holds a run" in again.stderr


@pytest.mark.parametrize("flag, skip", [((), True), (("--train-equivalent",), False)])
def test_train_equivalent_flag_reaches_the_loop(cli, tables, tmp_path, monkeypatch, flag, skip):
    import hwnas.search.runner as runner

    seen = []
    real_loop = runner.SearchLoop

    def capture(*args, **kwargs):
        seen.append(kwargs["settings"].skip_equivalent)
        return real_loop(*args, **kwargs)

    monkeypatch.setattr(runner, "SearchLoop", capture)
    acc, lat, _ = tables
    result = cli("search", "--space", "nb201", "--accuracy-table", acc, "--latency-table", lat, "--latency-budget",
                 "0.7ms", "--max-trainings", "3", "--initial-trainings", "3", "--profile-samples", "20",
                 "--run-dir", tmp_path / "run", "--profiles-dir", tmp_path / "profiles", *flag)
    assert result.exit_code == 0, result.stderr
    assert seen == [skip] and json.loads((tmp_path / "run" / "config.json").read_text())["skip_equivalent"] is skip
    again = cli("search", "--resume", tmp_path / "run", "--train-equivalent")
    assert again.exit_code == 2 and "drop --train-equivalent" in again.stderr
