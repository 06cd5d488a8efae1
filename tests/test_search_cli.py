"""``hwnas search`` from the command line: a true end-to-end run, resume, and every error path."""

from __future__ import annotations

import json

import pytest

from hwnas.search.budget import BudgetError, parse_duration, parse_latency


@pytest.mark.parametrize("text, ms", [("2ms", 2.0), ("1.5 ms", 1.5), ("800us", 0.8), ("0.5s", 500.0),
                                      ("250 µs", 0.25)])
def test_budgets_parse(text, ms):
    assert parse_latency(text) == pytest.approx(ms)


@pytest.mark.parametrize("text, message", [("0ms", "positive"), ("-1ms", "positive"), ("2", "needs a unit"),
                                           ("abc", "not a number"), ("3 parsecs", "unknown unit")])
def test_bad_budgets_are_rejected(text, message):
    with pytest.raises(BudgetError, match=message):
        parse_latency(text)


def test_durations_parse():
    assert parse_duration("1h30m") == 5400 and parse_duration("10m") == 600 and parse_duration("45s") == 45
    for text in ("soon", "45"):  # a duration names its unit
        with pytest.raises(BudgetError):
            parse_duration(text)


@pytest.mark.parametrize("args, message, code", [
    (["--latency-budget", "0ms"], "must be positive", 2),
    (["--latency-budget", "5"], "needs a unit", 2),
    (["--latency-budget", "fast"], "not a number", 2),
    ([], "--latency-budget is required", 2),
    (["--latency-budget", "1ms", "--controller", "magic"], "magic", 2),
    (["--latency-budget", "1ms", "--time-budget", "soon"], "time budget", 2),
    (["--latency-budget", "1ms", "--device", "pi4"], "run 'hwnas profile --device pi4", 1),
    (["--latency-budget", "1ms", "--dataset", "nope"], "unknown data set 'nope'", 1),
    (["--resume", "does-not-exist"], "does not exist", 1),
])
def test_error_paths(cli, tmp_path, args, message, code):
    result = cli("search", *args, "--profiles-dir", tmp_path / "profiles", "--run-dir", tmp_path / "run")
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], result.stderr


def test_end_to_end_search_on_digits_then_resume_with_more_trainings(cli, tmp_path):
    common = ["--profiles-dir", tmp_path / "profiles", "--store", tmp_path / "evals.sqlite"]
    result = cli("search", "--latency-budget", "10ms", "--max-trainings", "4", "--initial-trainings", "3",
                 "--epochs", "1", "--archs-per-round", "300", "--profile-samples", "10", "--candidates-per-round",
                 "1", "--run-dir", tmp_path / "run", *common)
    assert result.exit_code == 0, result.stderr
    assert "best:" in result.output and "measured (budget 10ms)" in result.output
    run = tmp_path / "run"
    outcome = json.loads((run / "result.json").read_text())
    assert outcome["trainings_used"] == 4 and outcome["feasible"] and outcome["best"]["latency_ms"] <= 10
    assert outcome["measurements_used"] >= 1 and outcome["trainings_over_budget"] == 0
    assert "latency measurements" in result.output and "measurements" in result.output.split("round 1 done")[1]
    assert 0 < outcome["test_accuracy"] <= 1
    profile = (tmp_path / "profiles" / "host" / "measurements.jsonl").read_text().splitlines()
    verified = json.loads((run / "state.json").read_text())["verified"]
    assert {v["arch"] for v in verified} <= {json.loads(line)["arch"] for line in profile}
    for name in ("config.json", "history.csv", "pareto.png", "search.log", "controller.ckpt"):
        assert (run / name).is_file(), name

    again = cli("search", "--resume", run, "--max-trainings", "5", *common)
    assert again.exit_code == 0, again.stderr
    state = json.loads((run / "state.json").read_text())
    assert len(state["verified"]) == 5 and [v["arch"] for v in state["verified"][:4]] == [v["arch"] for v in verified]
    stamp = (run / "result.json").stat().st_mtime_ns
    finished = cli("search", "--resume", run, *common)
    assert finished.exit_code == 0 and "best:" in finished.output
    assert (run / "result.json").stat().st_mtime_ns == stamp  # a finished run is not redone nor rewritten
    existing = cli("search", "--latency-budget", "1ms", "--run-dir", run, *common)
    assert existing.exit_code == 1 and "already holds a run" in existing.stderr
    _check_trials(cli, run)


def _check_trials(cli, run):
    """``hwnas trials`` lists every trained candidate with every field, in JSON, CSV and text, sorted as asked."""
    import csv
    import io

    state = json.loads((run / "state.json").read_text())
    listed = cli("trials", run, "--json")
    assert listed.exit_code == 0, listed.stderr
    trials = json.loads(listed.stdout)
    assert [t["arch"] for t in trials] == [v["arch"] for v in state["verified"]] and len(trials) == 5
    for number, trial in enumerate(trials, 1):
        assert trial["number"] == number and 0 < trial["accuracy"] <= 1 and 0 < trial["test_accuracy"] <= 1
        assert trial["params"] > 1000 and trial["macs"] > trial["params"] and trial["train_seconds"] > 0
        assert trial["seed"] == 0 and trial["elapsed_s"] > 0 and trial["latency_measured"] is True
    by_accuracy = json.loads(cli("trials", run, "--json", "--sort", "accuracy").stdout)
    assert [t["accuracy"] for t in by_accuracy] == sorted((t["accuracy"] for t in trials), reverse=True)
    rows = list(csv.DictReader(io.StringIO(cli("trials", run, "--csv", "--sort", "macs", "--reverse").stdout)))
    assert [int(r["macs"]) for r in rows] == sorted((t["macs"] for t in trials), reverse=True)
    text = cli("trials", run).stdout.splitlines()
    best = json.loads((run / "result.json").read_text())["best"]["arch"]
    assert len(text) == 7 and [line for line in text if line.startswith("*")][0].endswith(best)
    assert text[-1] == "5 trials; * is the answer"
    bad = cli("trials", run, "--sort", "nope")
    assert bad.exit_code == 2 and "nope" in bad.stderr
    # verified.csv holds the same fields
    written = list(csv.DictReader(io.StringIO((run / "verified.csv").read_text())))
    assert [r["arch"] for r in written] == [t["arch"] for t in trials] and all(r["macs"] for r in written)
