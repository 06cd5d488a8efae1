"""The tabular accuracy source: parsing, line-numbered errors, lookups counted as evaluations."""

import numpy as np
import pytest

from hwnas.data import create_dataset
from hwnas.spaces import create_space
from hwnas.training import AccuracyTable, EvalStore, TableError, TableEvaluator
from training_helpers import FAST


@pytest.fixture(scope="module")
def nb201():
    return create_space("nb201")


@pytest.fixture
def table_file(tmp_path, nb201):
    rng = np.random.default_rng(0)
    archs = nb201.sample_distinct(5, rng)
    lines = ["arch,accuracy", "# NAS-Bench-201-style test table", ""]
    lines += [f"{a.string},{0.5 + i / 20}" for i, a in enumerate(archs)]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, archs


def test_lookups_count_and_go_through_the_store(tmp_path, table_file, nb201):
    path, archs = table_file
    evaluator = TableEvaluator(path, nb201)
    assert len(evaluator.table) == 5 and archs[2] in evaluator.table
    digits = create_dataset("digits")
    result = evaluator(nb201, archs[2], digits, recipe=FAST, seed=0)
    assert result.val_accuracy == pytest.approx(0.6) and result.source == "table" and result.epochs == 0
    evaluator(nb201, archs[2], digits, recipe=FAST, seed=0)
    assert evaluator.evaluations == 2  # every lookup is one evaluation
    store = EvalStore(tmp_path / "e.sqlite")
    record = store.evaluate(nb201, archs[3], digits, recipe=FAST, seed=0, trainer=evaluator)
    assert record.source == "table" and record.fidelity == "table"
    assert record.recipe_hash == f"table-{evaluator.table.digest}" and record.recipe["table"] == str(path)
    assert store.evaluate(nb201, archs[3], digits, recipe=FAST, seed=0, trainer=evaluator).reused


def test_unknown_architecture_and_wrong_space(table_file, nb201):
    path, archs = table_file
    evaluator = TableEvaluator(path, nb201)
    missing = next(a for a in nb201.enumerate() if a not in archs)
    with pytest.raises(TableError, match=r"is not in accuracy table .*table\.csv \(5 architectures\)"):
        evaluator(nb201, missing, create_dataset("digits"), recipe=FAST, seed=0)
    mobilenet = create_space("mobilenet")
    with pytest.raises(TableError, match="for space 'nb201', not 'mobilenet'"):
        evaluator(mobilenet, mobilenet.sample(np.random.default_rng(0)), create_dataset("digits"),
                  recipe=FAST, seed=0)


@pytest.mark.parametrize("row, message", [
    ("{arch},0.9,extra", "line 3: expected 2 fields"),
    ("|nope~0|,0.9", "line 3: nb201"),
    ("{arch},high", "line 3: accuracy 'high' is not a number"),
    ("{arch},93.5", r"line 3: accuracy 93.5 is not in \[0, 1\] \(divide percentages by 100\)"),
    ("{arch},nan", "line 3: accuracy nan is not in"),
    ("{first},0.5", "line 3: architecture repeats line 2"),
])
def test_bad_rows_are_reported_by_line_number(tmp_path, table_file, nb201, row, message):
    _, archs = table_file
    path = tmp_path / "bad.csv"
    path.write_text(f"arch,accuracy\n{archs[0].string},0.4\n"
                    + row.format(arch=archs[1].string, first=archs[0].string) + "\n")
    with pytest.raises(TableError, match=r"bad\.csv " + message):
        AccuracyTable(path, nb201)


def test_empty_missing_and_binary_tables(tmp_path, nb201):
    (tmp_path / "empty.csv").write_text("arch,accuracy\n")
    with pytest.raises(TableError, match="no 'arch,accuracy' rows"):
        AccuracyTable(tmp_path / "empty.csv", nb201)
    with pytest.raises(TableError, match="no such file"):
        AccuracyTable(tmp_path / "absent.csv", nb201)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TableError, match="not UTF-8"):
        AccuracyTable(tmp_path / "bin.csv", nb201)
