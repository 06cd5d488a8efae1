"""``hwnas train``, ``hwnas datasets`` and ``hwnas evals``: output, store reuse, error paths."""

import json

import numpy as np
import pytest
from PIL import Image

from hwnas.spaces import create_space
from training_helpers import TINY

FAST_ARGS = ["--epochs", "1", "--data-fraction", "0.25", "--threads", "1", "-R", "warmup_epochs=0"]


def test_train_prints_and_reuses_the_store(cli, tmp_path):
    store = tmp_path / "e.sqlite"
    first = cli("train", TINY, *FAST_ARGS, "--store", store)
    assert first.exit_code == 0, first.stderr
    assert "val accuracy" in first.output and "params" in first.output
    assert f"stored in {store}" in first.output
    again = cli("train", TINY, *FAST_ARGS, "--store", store, "--json")
    record = json.loads(again.output)
    assert record["reused"] is True and record["arch"] == TINY and record["fidelity"] == "1ep@0.25"
    listed = cli("evals", "--store", store, "--json")
    assert [r["arch"] for r in json.loads(listed.output)] == [TINY]
    table = cli("evals", "--store", store, "--sort", "accuracy")
    assert TINY in table.output and "1 of 1 evaluations" in table.output
    assert "0 of 1" in cli("evals", "--store", store, "--space", "nb201").output


def test_train_from_an_accuracy_table_and_without_store(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb201 = create_space("nb201")
    arch = nb201.sample(np.random.default_rng(0))
    (tmp_path / "t.csv").write_text(f"arch,accuracy\n{arch.string},0.875\n")
    result = cli("train", arch.string, "--space", "nb201", "--accuracy-table", "t.csv")
    assert result.exit_code == 0, result.stderr
    assert "87.50%" in result.output and "looked up" in result.output and (tmp_path / "evals.sqlite").exists()
    loose = cli("train", TINY, *FAST_ARGS, "--no-store", "--json")
    assert loose.exit_code == 0 and json.loads(loose.output)["reused"] is False
    assert len(json.loads(cli("evals", "--json").output)) == 1  # --no-store wrote nothing


def test_train_on_an_image_folder(cli, tmp_path):
    for cls, colour in (("a", 0), ("b", 255)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("L", (7, 7), colour).save(tmp_path / "imgs" / cls / f"{i}.png")
    result = cli("train", TINY, "--dataset", tmp_path / "imgs", "--input-shape", "1x8x8", *FAST_ARGS,
                 "--store", tmp_path / "e.sqlite", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.output)["dataset"].startswith("folder:imgs@")
    listing = cli("datasets", tmp_path / "imgs", "--input-shape", "1x8x8", "--json")
    info = json.loads(listing.output)[0]
    assert info["classes"] == 2 and info["input_shape"] == "1x8x8" and info["train"] + info["val"] + \
        info["test"] == 10


def test_datasets_lists_the_registry(cli):
    result = cli("datasets")
    assert result.exit_code == 0 and "digits" in result.output and "1x8x8" in result.output
    rows = {row["name"]: row for row in json.loads(cli("datasets", "--json").output)}
    assert rows["digits"]["train"] == 540
    assert (rows["cluttered-digits"]["input_shape"], rows["cluttered-digits"]["train"]) == ("1x32x32", 3000)


@pytest.mark.parametrize("args, message, code", [
    (["train", TINY, "--dataset", "nowhere"], "unknown data set 'nowhere'", 1),
    (["train", TINY, "--dataset", "digits", "--input-shape", "1x8x8"], "applies only to image folders", 1),
    (["train", TINY, "-R", "bogus=1"], "unknown recipe setting 'bogus'", 1),
    (["train", TINY, "-R", "lr=-1"], "lr=-1", 1),
    (["train", TINY, "--epochs", "0"], "--epochs", 2),
    (["train", TINY, "--data-fraction", "0"], "--data-fraction", 2),
    (["train", "16:k3e1"], "expected 4 stages", 1),
    (["train", TINY, "--accuracy-table", "missing.csv"], "missing.csv: no such file", 1),
    (["train", TINY, "-D", "noise=-2"], "noise", 1),
    (["evals", "--store", "absent.sqlite"], "no evaluation store at absent.sqlite", 1),
    (["evals", "--min-accuracy", "2"], "--min-accuracy", 2),
    (["datasets", "nowhere"], "unknown data set 'nowhere'", 1),
])
def test_bad_input_gives_one_clear_line(cli, tmp_path, monkeypatch, args, message, code):
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr


def test_unknown_arch_in_a_table_is_one_line(cli, tmp_path):
    nb201 = create_space("nb201")
    rng = np.random.default_rng(0)
    known, other = nb201.sample(rng), nb201.sample(rng)
    (tmp_path / "t.csv").write_text(f"{known.string},0.5\n")
    result = cli("train", other.string, "--space", "nb201", "--accuracy-table", tmp_path / "t.csv",
                 "--no-store")
    assert result.exit_code == 1 and "is not in accuracy table" in result.stderr
