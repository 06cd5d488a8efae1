"""Issue 34, item 3: every option has a range, checked before any work starts: one ``Error:`` line, the expected
exit code, and nothing written (the file tree unchanged)."""

from __future__ import annotations

import pytest

from battery import assert_refused

MB = "32:k5e1.k3e1/24:k5e6se.k5e6se.k5e3se/64:k7e6/64:k5e1se.k7e6.k3e6"
NB = "|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|skip_connect~1|none~2|"
SEARCH = ("search", "--latency-budget", "2ms", "--run-dir", "run", "--max-trainings", "2")

#: (id, arguments, exit code, a part of the one line)
CASES = [
    # batch and shape sizes that fit memory
    ("onnx-batch-beyond-limit", ("onnx", MB, "--batch-size", "100000000", "-o", "m.onnx"), 2, "1<=x<=4096"),
    ("onnx-shape-beyond-memory", ("onnx", MB, "--input-shape", "64x4096x4096", "-o", "m.onnx"), 2,
     "the limit is 16,777,216"),
    ("profile-batch-of-shape-beyond-memory",
     ("profile", "--device", "d", "--input-shape", "3x512x512", "--batch-size", "1000", "--samples", "1"), 2,
     "at most 21 here"),
    ("evaluate-batch-beyond-limit", ("evaluate", "m.onnx", "--latency-only", "--batch-size", "100000"), 2,
     "1<=x<=4096"),
    ("train-recipe-batch-beyond-limit", ("train", NB, "--space", "nb201", "--no-store", "-R", "batch_size=100000"),
     1, "batch_size=100000 must be in 2..4096"),
    # seeds and recipe options
    ("train-negative-split-seed", ("train", NB, "--space", "nb201", "--no-store", "-R", "split_seed=-1"), 1,
     "split_seed=-1 must be in 0.."),
    ("search-negative-split-seed", (*SEARCH, "-R", "split_seed=-1"), 1, "split_seed=-1"),
    ("train-negative-seed", ("train", NB, "--space", "nb201", "--no-store", "--seed", "-1"), 2, "--seed"),
    ("search-epochs-beyond-limit", (*SEARCH, "--epochs", "100000"), 2, "1<=x<=10000"),
    ("evals-negative-epochs", ("evals", "--epochs", "-1"), 2, "--epochs"),
    # -O checked against the constructor's signature and ranges, on every command
    ("search-negative-channels", (*SEARCH, "--space", "nb201", "-O", "channels=-8"), 1,
     "channels must be in 1..1024"),
    ("search-option-the-space-lacks", (*SEARCH, "-O", "channels=8"), 1,
     "space 'mobilenet' does not take these options: channels"),
    ("inspect-zero-strides", ("inspect", MB, "-O", "strides=[0,0,0,0]"), 2, "strides[0] must be in 1..2"),
    ("onnx-zero-strides", ("onnx", MB, "-O", "strides=[0,0,0,0]", "-o", "m.onnx"), 2, "strides[0]"),
    ("train-zero-strides", ("train", MB, "--no-store", "-O", "strides=[0,0,0,0]"), 2, "strides[0]"),
    ("sample-zero-strides", ("sample", "-O", "strides=[0,0,0,0]"), 2, "strides[0]"),
    ("sample-negative-kernel", ("sample", "-O", "kernels=[-3]"), 2, "kernels must be in 1..15"),
    ("sample-even-kernel", ("sample", "-O", "kernels=[4]"), 2, "kernels must be odd"),
    ("sample-no-stages", ("sample", "-O", "widths=[]"), 2, "widths must be a list"),
    ("sample-depth-zero", ("sample", "-O", "depths=[0]"), 2, "depths must be in 1..16"),
    # finite numbers
    ("search-gpus-nan", (*SEARCH, "--gpus-per-training", "nan"), 2, "finite number"),
    ("evals-min-accuracy-nan", ("evals", "--min-accuracy", "nan"), 2, "finite number"),
    ("train-data-fraction-nan", ("train", NB, "--space", "nb201", "--no-store", "--data-fraction", "nan"), 2,
     "finite number"),
    ("search-explore-inf", (*SEARCH, "--explore", "inf"), 2, "finite number"),
    # budgets: meaningful sizes, units on every duration
    ("search-latency-budget-below-1ns", ("search", "--latency-budget", "1e-300ms", "--run-dir", "run"), 2,
     "below the smallest budget, 1 ns"),
    ("search-time-budget-beyond-a-year", (*SEARCH, "--time-budget", "99999999h"), 2, "at most a year"),
    ("search-time-budget-without-unit", (*SEARCH, "--time-budget", "90"), 2, "needs a unit"),
    # comma-separated lists: no empty names
    ("benchmark-empty-controller", ("benchmark", "--latency-budget", "2ms", "--controllers", "ppo,,random",
                                    "--out", "b"), 2, "empty name"),
    ("benchmark-no-controller", ("benchmark", "--latency-budget", "2ms", "--controllers", ",", "--out", "b"), 2,
     "names nothing"),
    ("search-empty-transfer-source", (*SEARCH, "--transfer-from", "a,,b"), 2, "empty name"),
    ("profile-empty-column", ("profile", "--latency-table", "t.csv", "--columns", "a,,b", "--input-shape",
                              "1x8x8"), 2, "empty name"),
]


@pytest.mark.parametrize("case_id, args, code, needle", CASES, ids=[c[0] for c in CASES])
def test_an_option_out_of_range_is_one_line_before_any_work(cli, tmp_path, monkeypatch, case_id, args, code, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"not read: the batch is refused first")
    (tmp_path / "t.csv").write_text("arch,a,b\n")
    assert_refused(cli, tmp_path, *args, code=code, needle=needle)


def test_evaluate_refuses_a_provider_this_machine_lacks(cli, tmp_path, monkeypatch):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    monkeypatch.chdir(tmp_path)
    assert cli("onnx", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--space", "nb201", "-o",
               "m.onnx").exit_code == 0
    assert_refused(cli, tmp_path, "evaluate", "m.onnx", "--latency-only", "--provider", "cuda", code=1,
                   needle="provider cuda")


def test_the_space_and_recipe_check_their_own_arguments():
    """The ranges live in the constructors, so Python callers and RunConfig get them too."""
    from hwnas.search.config import ConfigError, RunConfig
    from hwnas.spaces import SpaceOptionError, create_space
    from hwnas.training.recipe import Recipe, RecipeError

    with pytest.raises(SpaceOptionError, match="strides"):
        create_space("mobilenet", strides=(0, 0, 0, 0))
    with pytest.raises(TypeError, match="does not take"):  # still a TypeError for an unknown keyword
        create_space("nb201", widths=3)
    with pytest.raises(RecipeError, match="split_seed"):
        Recipe(split_seed=-1)
    with pytest.raises(ConfigError, match="time_budget_s"):
        RunConfig(budget_ms=2.0, time_budget_s=1e12)
    with pytest.raises(ConfigError, match="budget_ms"):
        RunConfig(budget_ms=1e-300)
