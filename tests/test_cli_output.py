"""What the commands print: ``--json`` documents, the global ``-q/--quiet`` and each warning once with its remedy."""

from __future__ import annotations

import json

import pytest

from hwnas.spaces import create_space

CHANCE = "every verified accuracy is at chance level"


def nb201_latency_of(s: str) -> float:
    return round(0.2 + 0.12 * s.count("nor_conv_3x3") + 0.04 * s.count("nor_conv_1x1"), 6)


@pytest.fixture(scope="module")
def chance_tables(tmp_path_factory):
    """nb201 tables whose accuracies all sit at chance (10 classes), and synthetic latencies."""
    folder = tmp_path_factory.mktemp("chance")
    strings = [a.string for a in create_space("nb201").enumerate()]
    (folder / "acc.csv").write_text("arch,accuracy\n" + "".join(f"{s},{0.1 + 0.001 * (i % 5)}\n"
                                                                 for i, s in enumerate(strings)))
    (folder / "lat.csv").write_text("arch,latency_ms\n" + "".join(f"{s},{nb201_latency_of(s)}\n" for s in strings))
    return folder / "acc.csv", folder / "lat.csv"


def test_spaces_and_sample_json(cli):
    spaces = cli("spaces", "--json")
    assert spaces.exit_code == 0, spaces.stderr
    rows = {row["space"]: row for row in json.loads(spaces.stdout)["spaces"]}
    assert rows["nb201"]["architectures"] == 15625 and rows["nb201"]["decisions"] == 6
    assert rows["nb201"]["description"]
    sample = cli("sample", "--space", "nb201", "-n", "3", "--seed", "1", "--json")
    assert sample.exit_code == 0, sample.stderr
    document = json.loads(sample.stdout)
    text = cli("sample", "--space", "nb201", "-n", "3", "--seed", "1")
    assert [a["arch"] for a in document["archs"]] == text.stdout.split()  # the same information as the text
    assert document["space"] == "nb201" and document["seed"] == 1 and len({a["id"] for a in document["archs"]}) == 3
    too_many = cli("sample", "--space", "nb201", "-n", "20000", "--json")
    assert too_many.exit_code == 2 and too_many.stdout == ""


def test_onnx_json(cli, tmp_path):
    import numpy as np

    arch = create_space("nb201").sample(np.random.default_rng(0)).string
    result = cli("onnx", arch, "--space", "nb201", "-o", tmp_path / "m.onnx", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["path"] == str(tmp_path / "m.onnx") and (tmp_path / "m.onnx").is_file()
    assert document["size_bytes"] > 0 and document["parity"]["max_abs_error"] <= document["parity"]["tolerance"]


def test_predictors_fit_and_list_json(cli, tmp_path, chance_tables):
    strings = [a.string for a in create_space("nb201").enumerate()][::700]
    table = tmp_path / "acc.csv"
    table.write_text("arch,accuracy\n" + "".join(f"{s},{1 - nb201_latency_of(s) / 2}\n" for s in strings))
    fitted = cli("predictors", "fit", "accuracy", "--space", "nb201", "--accuracy-table", table,
                 "--predictors-dir", tmp_path / "p", "--name", "acc", "--json")
    assert fitted.exit_code == 0, fitted.stderr
    document = json.loads(fitted.stdout)
    assert document["name"] == "acc" and document["records"] == len(strings) and "holdout" in document["scores"]
    (tmp_path / "p" / "broken").mkdir()
    (tmp_path / "p" / "broken" / "meta.json").write_text("{")
    listed = cli("predictors", "list", "--predictors-dir", tmp_path / "p", "--json")
    assert listed.exit_code == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)["predictors"]}
    assert rows["acc"]["kind"] == "accuracy" and rows["acc"]["n_train"] == len(strings)
    assert "unreadable" in rows["broken"]


def test_quiet_json_and_the_chance_warning_once(cli, tmp_path, chance_tables):
    acc, lat = chance_tables
    run = tmp_path / "run"
    args = ["search", "--space", "nb201", "--accuracy-table", acc, "--latency-table", lat, "--latency-budget",
            "0.7ms", "--max-trainings", "4", "--initial-trainings", "3", "--candidates-per-round", "2",
            "--archs-per-round", "60", "--profile-samples", "20", "--run-dir", run, "--profiles-dir",
            tmp_path / "profiles", "--store", tmp_path / "evals.sqlite"]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert result.output.count(CHANCE) == 1 and "--epochs" in result.stderr  # once, with the remedy
    assert "initial:" in result.stdout and CHANCE not in result.stdout

    quiet = cli("-q", "search", "--resume", run)  # a finished run: its stored answer, the warning still once
    assert quiet.exit_code == 0, quiet.stderr
    lines = quiet.stdout.strip().splitlines()
    assert lines[0].startswith("search finished:") and lines[-1].startswith("export it with:")
    assert not any(line.startswith(("initial", "round", "  verified")) for line in lines)
    assert quiet.stderr.count(CHANCE) == 1 and quiet.stderr.strip().count("\n") == 0

    as_json = cli("-q", "search", "--resume", run, "--json")
    assert as_json.exit_code == 0, as_json.stderr
    document = json.loads(as_json.stdout)  # stdout is the one document
    assert document["run_dir"] == str(run) and CHANCE in document["warning"] and document["trainings_used"] == 4
    assert as_json.stderr.count(CHANCE) == 1

    report = cli("report", run, "-o", tmp_path / "r.html", "--json")
    assert report.exit_code == 0, report.stderr
    assert json.loads(report.stdout) == {"report": str(tmp_path / "r.html"), "runs": [str(run)]}


def test_quiet_keeps_results_and_refuses_verbose(cli):
    quiet = cli("-q", "sample", "--space", "nb201", "-n", "2")
    assert quiet.exit_code == 0 and len(quiet.stdout.split()) == 2 and quiet.stderr == ""
    both = cli("-q", "-v", "spaces")
    assert both.exit_code == 2 and "contradict" in both.stderr


def test_quiet_silences_progress_echo_and_bars(monkeypatch):
    import click

    from hwnas.cli.common import bars_wanted, progress_echo, set_quiet, stderr_echo

    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    with click.Context(click.Command("x")) as ctx:
        assert progress_echo() is click.echo and progress_echo(as_json=True) is stderr_echo
        set_quiet(ctx, True)
        assert progress_echo()("anything") is None and progress_echo() is not click.echo
        assert not bars_wanted()


def test_a_latency_table_warns_of_skipped_rows_once(cli, tmp_path, chance_tables):
    acc, lat = chance_tables
    bad = tmp_path / "lat.csv"
    bad.write_text(lat.read_text() + "garbage,1.0\n")
    result = cli("search", "--space", "nb201", "--accuracy-table", acc, "--latency-table", bad, "--latency-budget",
                 "0.7ms", "--max-trainings", "3", "--initial-trainings", "3", "--profile-samples", "20",
                 "--final-seeds", "2", "--run-dir", tmp_path / "run", "--profiles-dir", tmp_path / "profiles",
                 "--store", tmp_path / "evals.sqlite", "--json")
    assert result.exit_code == 0, result.stderr
    json.loads(result.stdout)
    assert result.stderr.count("rows skipped") == 1 and "fix or delete them" in result.stderr
    assert result.stderr.count("--final-seeds 2 ignored") == 1 and "drop --final-seeds" in result.stderr


def test_profile_json_for_a_measurement_and_a_table_import(cli, tmp_path, latency_table):
    """``hwnas profile --json``: the same facts as the lines, as one document on stdout (the lines on stderr)."""
    measured = cli("profile", "--device", "host", "--space", "nb201", "--input-shape", "1x8x8", "--samples", "3",
                   "--profiles-dir", tmp_path / "profiles", "--no-progress", "--no-transfer", "--json")
    assert measured.exit_code == 0, measured.stderr
    document = json.loads(measured.stdout)
    assert document["profile"] == "host" and document["measured"] == 3 and document["held_after"] == 3
    assert document["space"] == "nb201" and document["input_shape"] == [1, 8, 8] and document["seconds"] > 0
    assert "measured 3 nb201 architectures" in measured.stderr
    imported = cli("profile", "--device", "pub", "--space", "nb201", "--input-shape", "1x8x8", "--latency-table",
                   latency_table, "--profiles-dir", tmp_path / "profiles", "--json")
    assert imported.exit_code == 0, imported.stderr
    table = json.loads(imported.stdout)
    assert table["profile"] == "pub" and table["imported"] == table["held_after"] == 15625
    assert table["skipped"] == 0 and table["table"] == latency_table.name
    refused = cli("profile", "--json", "show", "host", "--profiles-dir", tmp_path / "profiles")
    assert refused.exit_code == 2 and "--json" in refused.stderr  # the subcommand takes its own --json
