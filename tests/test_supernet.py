"""The weight-sharing supernet: slicing, extraction, BN recalibration, training resume, the store, the CLI."""

from __future__ import annotations

import json
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hwnas.data.resolve import DatasetSpec
from hwnas.search.estimates import Calibration
from hwnas.spaces import create_space
from hwnas.supernet.elastic import MobileNetSupernet, SupernetError
from hwnas.onnx_export import calibrate_batchnorm
from hwnas.supernet.estimate import SupernetEstimator, scoring_subset
from hwnas.supernet.folder import SupernetFolder, SupernetSettings
from hwnas.supernet.training import train_supernet
from hwnas.training import Recipe
from hwnas.training.store import EvalStore

TINY = dict(widths=((8, 16), (8, 16)), depths=(1, 2), strides=(1, 2), stem_channels=8, head_channels=16)
TINY_OPTIONS = ["-O", "widths=[[8,16],[8,16]]", "-O", "depths=[1,2]", "-O", "strides=[1,2]",
                "-O", "stem_channels=8", "-O", "head_channels=16"]
QUICK = Recipe(epochs=2, data_fraction=0.2)


def _randomised(net: torch.nn.Module) -> torch.nn.Module:
    """Random batch-norm statistics and affine parameters, so that a wrong slice shows in the output."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=generator) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=generator) - 0.5)
    return net.eval()


def _assert_extraction_computes_the_supernet(net, x: torch.Tensor, rng) -> None:
    """The largest, the smallest and 8 random sub-networks: ``extract(arch)`` computes what the supernet
    computes with ``arch`` active, and the sub-networks really differ (slicing is not a no-op)."""
    archs = [net.largest(), net.smallest()] + [net.space.sample(rng) for _ in range(8)]
    outputs = []
    for arch in archs:
        with torch.no_grad():
            expected = net(x, arch)
            got = net.extract(arch)(x)
        assert got.shape == (len(x), net.num_classes)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        outputs.append(expected)
    assert not torch.allclose(outputs[0], outputs[1])


@pytest.mark.parametrize("options", [TINY, {}])
def test_extracted_subnetwork_computes_what_the_supernet_computes(options, rng):
    space = create_space("mobilenet", **options)
    torch.manual_seed(0)
    net = _randomised(MobileNetSupernet(space, (1, 16, 16), 5))
    _assert_extraction_computes_the_supernet(net, torch.randn(3, 1, 16, 16), rng)


def test_nb201_cell_supernet_extracts_what_it_computes_and_each_edge_its_own_operation(rng):
    from hwnas.supernet import CellSupernet
    from hwnas.supernet.networks import make_supernet

    space = create_space("nb201", channels=4, cells_per_stage=1)
    torch.manual_seed(0)
    net = _randomised(make_supernet(space, (1, 8, 8), 3))
    assert isinstance(net, CellSupernet)
    _assert_extraction_computes_the_supernet(net, torch.randn(3, 1, 8, 8), rng)
    arch = space.parse("|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    model = net.extract(arch)
    cell, shared = model[1], net.units[1]
    assert torch.equal(cell.edges["e1_0"][1].weight, shared.edges["e1_0"]["nor_conv_1x1"][1].weight)
    assert torch.equal(cell.edges["e3_2"][1].weight, shared.edges["e3_2"]["nor_conv_3x3"][1].weight)
    assert not torch.equal(shared.edges["e2_0"]["nor_conv_3x3"][1].weight, shared.edges["e3_2"]["nor_conv_3x3"][1].weight)
    with pytest.raises(SupernetError, match="no supernet covers space"):
        make_supernet(SimpleNamespace(name="other"), (1, 8, 8), 3)


def test_nb201_supernet_trains_and_estimates(tmp_path):
    space = create_space("nb201", channels=4, cells_per_stage=1)
    folder = SupernetFolder(tmp_path / "cells")
    meta = train_supernet(folder, space=space, spec=DatasetSpec("digits"), recipe=Recipe(epochs=1, data_fraction=0.1),
                          threads=1)
    assert meta["finished"] and meta["space"] == "nb201"
    estimator = SupernetEstimator(folder, threads=1)
    dataset = DatasetSpec("digits").resolve()
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_1x1~2|")
    first = estimator.estimate(arch, dataset)
    assert 0.0 <= first.val_accuracy <= 1.0 and estimator.estimate(arch, dataset).val_accuracy == first.val_accuracy


def test_kernel_width_and_depth_are_leading_slices_and_kernel_centres():
    space = create_space("mobilenet", **TINY)
    net = MobileNetSupernet(space, (1, 8, 8), 3)
    arch = space.parse("8:k3e3/16:k5e6se.k7e1")
    model = net.extract(arch)
    units = list(model)
    assert len(units) == 1 + 3 + 1  # stem, depth 1 + depth 2 blocks, head: the leading blocks only
    block = net.stages[0][0]  # 8 -> 8 channels, expansion 3 (24), kernel 3
    expand, depthwise, project = (layer[0] for layer in units[1].body)
    assert torch.equal(expand.weight, block.expand.weight[:24, :8])
    assert torch.equal(depthwise.weight, block.depthwise.weight[:24, :, 2:5, 2:5])  # centre 3x3 of 7x7
    assert torch.equal(project.weight, block.project.weight[:8, :24])
    second = net.stages[1][0]  # 8 -> 16, expansion 6 (48), kernel 5, SE
    layers = list(units[2].body)
    assert torch.equal(layers[1][0].weight, second.depthwise.weight[:48, :, 1:6, 1:6])
    assert torch.equal(layers[2].reduce.weight, second.se.reduce.weight[:12, :48])
    third = net.stages[1][1]  # 16 -> 16, expansion 1: no expansion convolution, full 7x7
    layers = list(units[3].body)
    assert len(layers) == 2 and torch.equal(layers[0][0].weight, third.depthwise.weight[:16])
    assert torch.equal(units[4][0][0].weight, net.head[0].weight[:, :16])


def test_forward_without_an_active_subnetwork_is_refused():
    net = MobileNetSupernet(create_space("mobilenet", **TINY), (1, 8, 8), 3)
    with pytest.raises(SupernetError, match="no sub-network is active"):
        net(torch.zeros(1, 1, 8, 8))
    with pytest.raises(SupernetError, match="mobilenet space only"):
        MobileNetSupernet(create_space("nb201"), (1, 8, 8), 3)


def test_batchnorm_recalibration_changes_statistics_and_is_deterministic():
    space = create_space("mobilenet", **TINY)
    net = MobileNetSupernet(space, (1, 8, 8), 3)
    arch = net.largest()
    images = np.random.default_rng(0).normal(1.0, 2.0, size=(300, 1, 8, 8)).astype(np.float32)
    runs = []
    for _ in range(2):
        model = net.extract(arch)
        before = model[0][1].running_mean.clone()
        calibrate_batchnorm(model, images, batch_size=64)
        assert not model.training
        runs.append([b.clone() for b in model.state_dict().values() if b.dtype == torch.float32])
        assert not torch.allclose(model[0][1].running_mean, before)
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_scoring_subset_is_a_fixed_random_subset():
    x = np.arange(100, dtype=np.float32).reshape(100, 1, 1, 1)
    y = np.repeat(np.arange(4), 25)  # sorted by class, as a split may be
    xs, ys = scoring_subset(x, y, 40, seed=0)
    again, _ = scoring_subset(x, y, 40, seed=0)
    other, _ = scoring_subset(x, y, 40, seed=1)
    assert len(xs) == 40 and np.array_equal(xs, again) and not np.array_equal(xs, other)
    assert np.all(np.diff(xs.ravel()) > 0) and np.array_equal(ys, y[xs.ravel().astype(int)])
    assert set(ys) == {0, 1, 2, 3}  # not the first 40 (two classes only)
    assert scoring_subset(x, y, None, seed=0)[0].shape == x.shape and len(scoring_subset(x, y, 500, seed=0)[1]) == 100


def _train(folder, *, recipe=QUICK, **kwargs):
    return train_supernet(SupernetFolder(folder), space=create_space("mobilenet", **TINY),
                          spec=DatasetSpec("digits"), recipe=recipe, threads=1, **kwargs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sn") / "uniform"
    meta = _train(folder)
    return folder, meta


def test_training_writes_a_self_describing_folder(trained):
    folder, meta = trained
    on_disk = json.loads((folder / "meta.json").read_text())
    assert on_disk == {**meta, "format": "hwnas-supernet", "format_version": 1}
    assert meta["finished"] and meta["epochs_done"] == 2 and len(meta["history"]) == 2
    assert meta["space"] == "mobilenet" and meta["dataset_key"] == "digits"
    assert meta["recipe"]["epochs"] == 2 and meta["settings"]["sampling"] == "uniform"
    assert len(meta["checksum"]) == 64 and meta["hwnas_version"]
    assert not (folder / "checkpoint.pt").exists()
    # asking again finds it finished: no training
    assert _train(folder)["checksum"] == meta["checksum"]


def test_training_resumes_after_an_interruption_to_the_same_weights(tmp_path, trained):
    _, reference = trained

    def stop_after_first(epoch, meta):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "sn", on_epoch=stop_after_first)
    meta = json.loads((tmp_path / "sn" / "meta.json").read_text())
    assert meta["epochs_done"] == 1 and not meta["finished"] and (tmp_path / "sn" / "checkpoint.pt").exists()
    resumed = _train(tmp_path / "sn")
    assert resumed["checksum"] == reference["checksum"]  # same weights, bit for bit
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in reference["history"]]


def test_another_supernet_in_the_folder_is_refused(trained):
    folder, _ = trained
    with pytest.raises(SupernetError, match="holds another supernet"):
        _train(folder, settings=SupernetSettings(sampling="sandwich"))


def test_sandwich_sampling_runs_largest_smallest_and_random_subnetworks(tmp_path):
    from hwnas.supernet.training import step_archs

    net = MobileNetSupernet(create_space("mobilenet", **TINY), (1, 8, 8), 3)
    archs = step_archs(net, SupernetSettings(sampling="sandwich", random_per_step=2), np.random.default_rng(0))
    assert len(archs) == 4 and archs[0] == net.largest() and archs[1] == net.smallest()
    assert len(step_archs(net, SupernetSettings(), np.random.default_rng(0))) == 1  # uniform: one a step
    meta = _train(tmp_path / "s", recipe=Recipe(epochs=1, data_fraction=0.1),
                  settings=SupernetSettings(sampling="sandwich"))
    assert meta["finished"] and meta["settings"]["sampling"] == "sandwich" and meta["settings"]["distill"]


def test_largest_epochs_train_the_largest_subnetwork_alone_first(tmp_path, trained):
    from hwnas.supernet.training import step_archs

    net = MobileNetSupernet(create_space("mobilenet", **TINY), (1, 8, 8), 3)
    settings = SupernetSettings(largest_epochs=2)
    assert [step_archs(net, settings, np.random.default_rng(0), epoch) for epoch in (1, 2)] == [[net.largest()]] * 2
    later = [step_archs(net, settings, np.random.default_rng(s), 3)[0] for s in range(8)]
    assert len(later) == 8 and len(set(later)) > 1  # then uniform sampling as before
    with pytest.raises(SupernetError, match="largest_epochs"):
        SupernetSettings(largest_epochs=-1)
    # recorded only when used (earlier supernets keep their identity); the weights differ from uniform's
    assert "largest_epochs" not in trained[1]["settings"]
    meta = _train(tmp_path / "warm", settings=SupernetSettings(largest_epochs=1))
    assert meta["settings"]["largest_epochs"] == 1 and meta["checksum"] != trained[1]["checksum"]


def test_tampered_or_crafted_files_are_refused_without_running_code(tmp_path, trained):
    import shutil

    folder, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "weights.pt").write_bytes((copy / "weights.pt").read_bytes()[:-10] + b"0" * 10)
    with pytest.raises(SupernetError, match="does not match the checksum"):
        SupernetEstimator(copy)

    class Boom:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / "pwned"),))

    unfinished = tmp_path / "unfinished"
    shutil.copytree(folder, unfinished)
    meta = json.loads((unfinished / "meta.json").read_text())
    meta.update(finished=False, epochs_done=1)
    (unfinished / "meta.json").write_text(json.dumps(meta))
    (unfinished / "checkpoint.pt").write_bytes(pickle.dumps({"epoch": 1, "model": Boom()}, protocol=2))
    with pytest.raises(SupernetError, match="checkpoint.pt is corrupt"):
        _train(unfinished)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(SupernetError, match="not finished"):
        SupernetEstimator(unfinished)


def test_estimates_are_stored_apart_from_trainings(tmp_path, trained):
    from hwnas.search.sources.accuracy import StoreAccuracy, StoreEstimates
    from hwnas.training.evaluator import Trainer

    folder, meta = trained
    space, dataset = create_space("mobilenet", **TINY), DatasetSpec("digits").resolve()
    store = EvalStore(tmp_path / "e.sqlite")
    estimates = StoreEstimates(store, space, dataset, SupernetEstimator(folder, threads=1))
    arch = space.parse("16:k3e3/16:k5e6se.k7e1")
    first = estimates.estimate(arch)
    assert 0.0 <= first <= 1.0 and estimates.estimate(arch) == first
    records = store.query(source="supernet")
    assert len(records) == 1 and records[0].recipe_hash.startswith("sn-" + meta["checksum"][:12])
    assert records[0].recipe["supernet"] == meta["checksum"] and records[0].fidelity == "supernet"
    trainings = StoreAccuracy(store, space, dataset, recipe=QUICK, seed=0, evaluator=Trainer(threads=1))
    assert trainings.known() == []  # an estimate is never read as a training
    with pytest.raises(SupernetError, match="trained on data set"):
        StoreEstimates(store, space, DatasetSpec("cluttered-digits").resolve(), SupernetEstimator(folder))
    with pytest.raises(SupernetError, match="covers space"):
        StoreEstimates(store, create_space("mobilenet"), dataset, SupernetEstimator(folder))


def test_onnxruntime_and_torch_scoring_agree(trained):
    folder, _ = trained
    estimator = SupernetEstimator(folder, threads=1)
    dataset = DatasetSpec("digits").resolve()
    arch = estimator.space.parse("16:k5e6se/8:k3e1.k3e3")
    fast = estimator.estimate(arch, dataset)
    estimator.backend = "torch"
    slow = estimator.estimate(arch, dataset)
    assert fast.source == "supernet" and fast.epochs == 0
    assert abs(fast.val_accuracy - slow.val_accuracy) <= 1 / 360 and abs(fast.val_loss - slow.val_loss) < 1e-3
    subset = SupernetEstimator(folder, threads=1, score_images=100)
    assert estimator.protocol_key(QUICK)[0].endswith("-c64-v1000")
    from hwnas.cli.supernet_cmds import supernet_eval_cmd
    from hwnas.supernet.estimate import CALIBRATION_IMAGES, SCORE_IMAGES

    defaults = {p.name: p.default for p in supernet_eval_cmd.params}
    assert defaults["calibration_images"] == CALIBRATION_IMAGES and defaults["score_images"] == str(SCORE_IMAGES)
    assert subset.protocol_key(QUICK)[0] == estimator.protocol_key(QUICK)[0].replace("-v1000", "-v100")
    assert SupernetEstimator(folder, score_images=None).protocol_key(QUICK)[0].endswith("-c64")
    scored = 100 * subset.estimate(arch, dataset).val_accuracy  # of exactly 100 images
    assert abs(scored - round(scored)) < 1e-4


def test_calibration_maps_estimates_onto_the_training_scale():
    exact = Calibration.fit([(0.2, 0.5), (0.4, 0.7), (0.6, 0.9)])
    assert exact(0.5) == pytest.approx(0.8) and exact.slope == pytest.approx(1.0) and exact.pairs == 3
    offset = Calibration.fit([(0.3, 0.8)])
    assert offset(0.1) == pytest.approx(0.6) and offset.slope == 1.0
    inverted = Calibration.fit([(0.1, 0.9), (0.5, 0.5), (0.9, 0.1)])  # no positive slope: offset only
    assert inverted.slope == 1.0
    assert Calibration()(0.3) == 0.3 and Calibration.fit([(0.0, 1.0)])(0.9) == 1.0  # clipped to [0, 1]


def test_cli_supernet_train_eval_and_search(tmp_path, cli, monkeypatch, trained):
    monkeypatch.chdir(tmp_path)
    made = cli("supernet", "train", *TINY_OPTIONS, "--epochs", "1", "--data-fraction", "0.1", "--threads", "1",
               "-o", "sn")
    assert made.exit_code == 0, made.output
    assert "checksum" in made.output and json.loads((tmp_path / "sn" / "meta.json").read_text())["finished"]
    folder, meta = trained
    archs = ["16:k3e3/16:k5e6se.k7e1", "8:k7e1se/8:k3e6"]
    shown = cli("supernet", "eval", *archs, "--supernet", folder, "--threads", "1", "--store", "e.sqlite")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.strip().splitlines()
    assert len(lines) == 2 and all(line.strip().split()[-1] == a for line, a in zip(lines, archs))
    listed = cli("evals", "--store", "e.sqlite", "--source", "supernet", "--json")
    assert {r["arch"] for r in json.loads(listed.output)} == set(archs)
    refused = cli("supernet", "eval", archs[0], "--supernet", tmp_path / "missing")
    assert refused.exit_code == 1 and "not a supernet folder" in refused.stderr
    run = cli("search", "--latency-budget", "1s", *TINY_OPTIONS, "--supernet", folder, "--max-trainings", "3",
              "--initial-trainings", "2", "--epochs", "1", "--data-fraction", "0.2", "--initial-estimates", "6",
              "--estimates-per-round", "2", "--archs-per-round", "50", "--profile-samples", "10",
              "--store", "e.sqlite", "--run-dir", "run")
    assert run.exit_code == 0, run.output
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["estimator"] == "supernet" and result["supernet"]["checksum"] == meta["checksum"]
    assert result["estimates_used"] >= 6 and result["trainings_used"] == 3
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    trained_archs = {v["arch"] for v in state["verified"]}
    assert result["best"]["arch"] in trained_archs  # the answer is a full training, never an estimate
    assert trained_archs <= set(state["estimated"])  # every trained architecture was estimated too
    assert "estimating 6 architectures" in run.output
    conflicting = cli("search", "--latency-budget", "1s", "--estimator", "train", "--supernet", folder)
    assert conflicting.exit_code == 2 and "drop one of them" in conflicting.stderr
    exported = cli("export", "run", "-o", "out/m.onnx", "--from-supernet", folder, "--epochs", "1",
                   "--train-threads", "1", "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["from_supernet"] == str(folder.resolve())
    from hwnas.onnx_export import read_metadata

    assert read_metadata(tmp_path / "out" / "m.onnx")["from_supernet"] == folder.resolve().name  # never a path
    assert torch.load(tmp_path / "out" / "m.pt", weights_only=True)["supernet_checksum"] == meta["checksum"]
    other_space = cli("export", "-o", "o.onnx", "--arch", "16:k3e1/24:k3e3/32:k5e3/48:k3e3", "--dataset", "digits",
                      "--from-supernet", folder)
    assert other_space.exit_code == 1 and "covers space" in other_space.stderr and not (tmp_path / "o.pt").exists()


def test_training_starts_from_given_weights(trained):
    from hwnas.training import train
    from hwnas.training.trainer import TrainingError
    from hwnas.supernet.weights import load_supernet

    folder, _ = trained
    supernet = load_supernet(folder)
    arch = supernet.space.parse("16:k5e6se/8:k3e1.k3e3")
    state = supernet.subnetwork_state(arch)
    still = Recipe(epochs=1, data_fraction=0.1, lr=1e-9, warmup_epochs=0.0, weight_decay=0.0)
    dataset = DatasetSpec("digits").resolve()
    kept = train(supernet.space, arch, dataset, recipe=still, threads=1, return_model=True, initial_state=state)
    fresh = train(supernet.space, arch, dataset, recipe=still, threads=1, return_model=True)
    weights = [k for k, v in state.items() if k.endswith("weight") and v.dim() == 4]
    assert all(torch.allclose(kept.model.state_dict()[k], state[k], atol=1e-6) for k in weights)
    assert not any(torch.allclose(fresh.model.state_dict()[k], state[k], atol=1e-3) for k in weights)
    other = supernet.space.parse("8:k3e1/8:k3e1")
    with pytest.raises(TrainingError, match="do not fit"):
        train(supernet.space, other, dataset, recipe=still, threads=1, initial_state=state)
