"""Latency-predictor transfer (issue 32): the ridge on other devices' latencies, its sources, its file, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwnas.predictors import LatencyPredictor, XGBPredictor
from hwnas.predictors.metrics import spearman, within
from hwnas.predictors.transfer import LatencySource, TransferLatencyPredictor
from hwnas.profiling.fingerprint import host_fingerprint
from hwnas.profiling.measure import Conditions, make_record
from hwnas.profiling.store import ProfileStore
from hwnas.profiling.tables import device_column
from hwnas.profiling.transfer import SourceTask, estimate_quality, find_sources
from hwnas.spaces import create_space

HELP = Path("/work/shared/benchdata/help-nb201/latency.csv")
SHAPE = (3, 32, 32)
NB201 = dict(space="nb201", input_shape=list(SHAPE), num_classes=10)


def device_latency(strings, *, base, conv3, conv1, pool, noise=0.0, seed=0):
    """A synthetic device: a fixed cost plus a cost per operation, with multiplicative noise."""
    rng = np.random.default_rng(seed)
    values = np.array([base + conv3 * s.count("nor_conv_3x3") + conv1 * s.count("nor_conv_1x1")
                       + pool * s.count("avg_pool_3x3") for s in strings])
    return values * np.exp(rng.normal(0, noise, len(values)))


DEVICES = {"a": (0.5, 0.30, 0.08, 0.05), "b": (2.0, 1.10, 0.40, 0.30), "c": (0.1, 0.02, 0.01, 0.04)}


@pytest.fixture(scope="module")
def strings():
    return [a.string for a in create_space("nb201").enumerate()]


@pytest.fixture(scope="module")
def synthetic(strings):
    """Three devices whose latency adds up per operation, and a target that does not: a power of device a's
    (its log-latency is linear in a's, so transfer fits it; a sum of operation costs cannot)."""
    devices = {name: dict(zip(strings, device_latency(strings, base=b, conv3=c3, conv1=c1, pool=p, noise=0.01,
                                                      seed=i)))
               for i, (name, (b, c3, c1, p)) in enumerate(DEVICES.items())}
    noise = np.exp(np.random.default_rng(9).normal(0, 0.01, len(strings)))
    devices["target"] = {s: 0.3 * devices["a"][s] ** 2.5 * e for s, e in zip(strings, noise)}
    return devices


def sources_of(tables, names, *, complete=True):
    return [LatencySource(n, tables[n], info={"source": "test"}, complete=complete) for n in names]


def test_transfer_predicts_a_new_device_from_20_measurements(strings, synthetic):
    rng = np.random.default_rng(0)
    own = [strings[i] for i in rng.choice(len(strings), 20, replace=False)]
    target = synthetic["target"]
    model = TransferLatencyPredictor(sources_of(synthetic, "abc"), **NB201).fit(own, [target[a] for a in own])
    probe = strings[::4]
    truth = np.array([target[s] for s in probe])
    predicted = model.predict(probe)
    assert within(truth, predicted, 0.10) >= 0.95 and spearman(truth, predicted) >= 0.95
    alone = LatencyPredictor(**NB201).fit(own, [target[a] for a in own]).predict(probe)
    assert within(truth, predicted, 0.10) > within(truth, alone, 0.10) + 0.2  # the sources are what helps
    mean, std = model.predict_dist(probe[:5])
    assert np.all(std > 0) and np.allclose(mean, predicted[:5])
    assert set(model.weights()) == {"a", "b", "c"}


@pytest.mark.skipif(not HELP.is_file(), reason="the HELP table of the shared benchmark data is not here")
def test_transfer_on_published_latencies_of_20_devices():
    import csv

    with HELP.open() as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    archs = [r[0] for r in body]
    table = {device_column(name): dict(zip(archs, (float(r[j]) for r in body))) for j, name in enumerate(header) if j}
    target = "titanx_1"
    sources = [LatencySource(n, t, complete=True) for n, t in table.items() if n != target]
    own = [archs[i] for i in np.random.default_rng(0).permutation(len(archs))[:20]]
    model = TransferLatencyPredictor(sources, **NB201).fit(own, [table[target][a] for a in own])
    truth = np.array([table[target][a] for a in archs])
    predicted = model.predict(archs)
    # benchmarks/fewshot_latency.py: 0.98 / 98% for this device at N=20 (mean of 10 draws)
    assert spearman(truth, predicted) >= 0.96 and within(truth, predicted, 0.10) >= 0.90


def test_incomplete_source_stands_in_with_its_own_predictor(strings, synthetic):
    rng = np.random.default_rng(1)
    held = {s: synthetic["a"][s] for s in (strings[i] for i in rng.choice(len(strings), 300, replace=False))}
    source = LatencySource("a", held)
    own = list(held)[:20]
    model = TransferLatencyPredictor([source], **NB201).fit(own, [synthetic["target"][s] for s in own])
    outside = [s for s in strings if s not in held][:400]
    assert source.fallback is None  # not needed for the fit: its records cover the own ones
    truth = np.array([synthetic["target"][s] for s in outside])
    assert spearman(truth, model.predict(outside)) > 0.9
    assert source.fallback is not None and source.fallback.n_train_ == 300


def test_saved_predictor_records_its_sources_and_loads_without_them(tmp_path, strings, synthetic):
    own = strings[:: len(strings) // 25][:25]
    partial = LatencySource("c", {s: synthetic["c"][s] for s in strings[:400]}, info={"runtime": "openvino"})
    model = TransferLatencyPredictor([*sources_of(synthetic, "ab"), partial], **NB201).fit(
        own, [synthetic["target"][s] for s in own])
    model.save(tmp_path / "p", scores={"cv": {"within_10pct": 0.9}})
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["algorithm"] == "transfer" and meta["n_train"] == 25
    assert [s["name"] for s in meta["sources"]] == ["a", "b", "c"]
    assert meta["sources"][2]["info"] == {"runtime": "openvino"} and meta["sources"][2]["records"] == 400
    assert (tmp_path / "p" / "source_2" / "meta.json").is_file()  # the partial source's stand-in travels too
    del synthetic  # nothing of the sources is used below but the predictor's own folder
    for loader in (XGBPredictor.load, LatencyPredictor.load, TransferLatencyPredictor.load):
        loaded = loader(tmp_path / "p")
        assert isinstance(loaded, TransferLatencyPredictor)
        probe = strings[500:520] + strings[-20:]
        assert np.allclose(loaded.predict(probe), model.predict(probe), rtol=1e-9)


def test_corrupt_transfer_meta_is_one_error(tmp_path, strings, synthetic):
    from hwnas.predictors import PredictorError

    own = strings[:: len(strings) // 20][:20]
    TransferLatencyPredictor(sources_of(synthetic, "ab"), **NB201).fit(
        own, [synthetic["target"][s] for s in own]).save(tmp_path / "p")
    meta_file = tmp_path / "p" / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["coef"] = ["x", 1]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(PredictorError, match="coef"):
        XGBPredictor.load(tmp_path / "p")
    meta["coef"] = [1.0, 2.0]
    meta_file.write_text(json.dumps(meta))
    good = (tmp_path / "p" / "sources.npz").read_bytes()
    for damaged in (b"not a zip", good[: len(good) // 2], good[:-40] + bytes(40)):
        (tmp_path / "p" / "sources.npz").write_bytes(damaged)
        with pytest.raises(PredictorError, match="sources.npz"):
            XGBPredictor.load(tmp_path / "p")
    import hashlib

    (tmp_path / "p" / "sources.npz").write_bytes(good)
    meta["sources"][0]["records"] += 1  # meta.json and the table disagree
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(PredictorError, match="inconsistent"):
        XGBPredictor.load(tmp_path / "p")
    assert meta["sources_sha256"] == hashlib.sha256(good).hexdigest()


# -- sources from profiles -----------------------------------------------------------------------------------
def write_profile(root, name, latencies, *, shape=SHAPE, threads=1, batch_size=1, precision="fp32"):
    space = create_space("nb201")
    store = ProfileStore(root, name)
    store.ensure(host_fingerprint(name, Conditions(threads=threads, batch_size=batch_size, precision=precision)))
    store.add_many([make_record(space="nb201", arch=space.parse(a), input_shape=shape, num_classes=10,
                                stats={"median_ms": float(v)}) for a, v in latencies.items()])
    return store


def test_only_compatible_sources_are_used(tmp_path, strings, synthetic):
    root = tmp_path / "profiles"
    some = dict(list(synthetic["a"].items())[:60])
    write_profile(root, "same", some)
    write_profile(root, "batch8", some, batch_size=8)
    write_profile(root, "half", some, precision="fp16")
    write_profile(root, "other-shape", some, shape=(3, 16, 16))
    write_profile(root, "few", dict(list(some.items())[:5]))
    write_profile(root, "target", dict(list(synthetic["target"].items())[:20]))
    (root / "broken").mkdir()
    (root / "broken" / "device.json").write_text("{not json")
    task = SourceTask("nb201", SHAPE, {}, 1, "fp32")
    lines = []
    found = find_sources(root, task, target="target", report=lines.append)
    assert [s.name for s in found] == ["same"]
    assert found[0].info["threads"] == 1 and found[0].info["runtime"] == "onnxruntime"
    text = "\n".join(lines)
    assert "'batch8' skipped: measured at batch size 8, not 1" in text
    assert "'half' skipped: measured at precision fp16, not fp32" in text
    assert "'few' skipped: holds 5 nb201 latencies" in text and "'broken' skipped" in text
    assert "other-shape" not in text  # it holds no record of this task: not worth a line
    assert len(lines) == 4
    named = []
    assert find_sources(root, task, target="target", names=["other-shape", "same"], report=named.append)[0].name \
        == "same"
    assert named == ["transfer source 'other-shape' skipped: holds 0 nb201 latencies at 3x32x32 (a source needs 20: "
                     "profile more architectures into it to use it)"]
    from hwnas.errors import HwnasError

    with pytest.raises(HwnasError, match="no profile 'nope'"):
        find_sources(root, task, target="target", names=["nope"])
    with pytest.raises(HwnasError, match="its own transfer source"):
        find_sources(root, task, target="target", names=["target"])
    assert find_sources(root, task, target="target", names=["nope", "same"], missing_ok=True,
                        report=named.append)[0].name == "same"
    # a published table records neither batch size nor precision: it is not refused on them
    assert find_sources(root, SourceTask("nb201", SHAPE, {}, None, None), target="target",
                        names=["batch8", "half"]) != []


def test_quality_estimate_and_its_suggestion(strings, synthetic):
    records = [{"arch": s, "median_ms": synthetic["target"][s]} for s in strings[::400][:30]]
    transferred = estimate_quality(records, sources_of(synthetic, "ab"), space="nb201", space_options={},
                                   input_shape=SHAPE, num_classes=10)
    alone = estimate_quality(records, [], space="nb201", space_options={}, input_shape=SHAPE, num_classes=10)
    assert transferred.n == alone.n == 30 and transferred.sources == ("a", "b") and alone.sources == ()
    assert transferred.model == "transfer" and alone.model in ("additive", "xgboost")
    assert transferred.within_10pct > alone.within_10pct
    assert "transferred from 2 profile(s)" in transferred.summary() and "more measurements refine little" in \
        transferred.summary()
    assert "on its own measurements" in alone.summary()
    xgb = estimate_quality(records, sources_of(synthetic, "ab"), space="nb201", space_options={},
                           input_shape=SHAPE, num_classes=10, transfer=False)
    assert xgb.model == "xgboost" and "no transfer source" in xgb.summary()
    from hwnas.profiling.transfer import QualityEstimate

    growing = QualityEstimate(n=20, sources=(), within_10pct=0.6, spearman=0.9, half_within_10pct=0.45)
    assert growing.suggestion().startswith("about 60 more measurements")  # 0.6 + 0.15 x 2 doublings >= 0.9
    flat = QualityEstimate(n=200, sources=("a",), within_10pct=0.7, spearman=0.9, half_within_10pct=0.69)
    assert "help little" in flat.suggestion()
    assert estimate_quality(records[:4], [], space="nb201", space_options={}, input_shape=SHAPE,
                            num_classes=10) is None


# -- command line --------------------------------------------------------------------------------------------
@pytest.fixture()
def device_table(tmp_path, strings, synthetic):
    """A table of three devices' latencies (arch,a,b,c) over 300 nb201 cells, and the target's 20 own rows."""
    chosen = strings[::50][:300]
    wide = tmp_path / "devices.csv"
    wide.write_text("arch,a,b,c\n" + "".join(f"{s},{synthetic['a'][s]:.6f},{synthetic['b'][s]:.6f},"
                                              f"{synthetic['c'][s]:.6f}\n" for s in chosen))
    own = tmp_path / "target.csv"
    own.write_text("arch,latency_ms\n" + "".join(f"{s},{synthetic['target'][s]:.6f}\n" for s in chosen[::15][:20]))
    return wide, own, chosen


def test_a_device_table_imports_as_profiles_and_transfers(cli, tmp_path, device_table, synthetic):
    wide, own, chosen = device_table
    profiles = tmp_path / "profiles"
    common = ["--space", "nb201", "--input-shape", "3x32x32", "--profiles-dir", profiles]
    result = cli("profile", "--latency-table", wide, "--columns", "all", "--device-prefix", "pub-", *common)
    assert result.exit_code == 0, result.stderr
    assert "profile 'pub-a'" in result.output and "imported 300 nb201 latencies at 3x32x32" in result.output
    assert sorted(p.name for p in profiles.iterdir()) == ["pub-a", "pub-b", "pub-c"]
    again = cli("profile", "--latency-table", wide, "--columns", "b", "--device-prefix", "pub-", *common)
    assert again.exit_code == 0 and "300 already in it" in again.output
    assert cli("profile", "--device", "tgt", "--latency-table", own, *common).exit_code == 0

    predictors = ["--predictors-dir", tmp_path / "predictors"]
    fitted = cli("predictors", "fit", "latency", "--device", "tgt", "--space", "nb201", "--input-shape", "3x32x32",
                 "--profiles-dir", profiles, *predictors, "--name", "tl")
    assert fitted.exit_code == 0, fitted.stderr
    assert "on 20 measurements of 'tgt', transferred from 3 other profile(s)" in fitted.output
    shown = cli("predictors", "show", "tl", *predictors)
    assert "transfer from 3 profile(s) on 20 own measurements" in shown.output
    assert all(f"pub-{d}" in shown.output for d in "abc")
    meta = json.loads((tmp_path / "predictors" / "tl" / "meta.json").read_text())
    assert [s["name"] for s in meta["sources"]] == ["pub-a", "pub-b", "pub-c"] and meta["n_train"] == 20
    assert "transfer from 3" in cli("predictors", "list", *predictors).output

    some = cli("predictors", "fit", "latency", "--device", "tgt", "--space", "nb201", "--input-shape", "3x32x32",
               "--profiles-dir", profiles, *predictors, "--name", "t2", "--transfer-from", "pub-a")
    assert some.exit_code == 0 and "t2 (transfer) on 20 measurements of 'tgt', transferred from 1 other" in some.output
    assert "chosen by 5-fold CV on the device's own measurements (within +-10%): additive " in some.output
    assert "transfer 100%, xgboost " in some.output
    predicted = json.loads(cli("predict", chosen[100], "--predictor", "t2", *predictors, "--json").output)
    assert predicted["predictions"][0]["prediction"] == pytest.approx(synthetic["target"][chosen[100]], rel=0.15)

    # --no-transfer is the predictor as it was before transfer: the same fit of the device's own records
    alone = cli("predictors", "fit", "latency", "--device", "tgt", "--space", "nb201", "--input-shape", "3x32x32",
                "--profiles-dir", profiles, *predictors, "--name", "t3", "--no-transfer")
    assert alone.exit_code == 0 and "transferred" not in alone.output
    loaded = XGBPredictor.load(tmp_path / "predictors" / "t3")
    records = ProfileStore(profiles, "tgt").records("nb201", SHAPE)
    reference = LatencyPredictor(**NB201, space_options={}).fit([r["arch"] for r in records],
                                                                [r["median_ms"] for r in records])
    assert type(loaded) is LatencyPredictor
    assert np.array_equal(loaded.predict(chosen), reference.predict(chosen))


@pytest.mark.parametrize("args, message", [
    (["--columns", "all"], "--columns applies to a --latency-table"),
    (["--latency-table", "{wide}", "--columns", "all", "--device", "x"], "--device does not apply to --columns"),
    (["--latency-table", "{wide}", "--columns", "zz"], "no column 'zz' in the table (it has: a, b, c)"),
    (["--latency-table", "{wide}", "--columns", ","], "'--columns': names nothing"),
    (["--latency-table", "{wide}", "--columns", "a,,b"], "empty name"),
    (["--latency-table", "{own}", "--columns", "all"], "import it with --device NAME"),
    (["--device", "x", "--latency-table", "{wide}"], "imported with --columns"),
    (["--device", "x", "--samples", "3", "--device-prefix", "p-"], "--device-prefix applies to --columns"),
    (["--latency-table", "{wide}", "--columns", "all", "--device-prefix", "../"], "device name"),
])
def test_device_table_errors(cli, tmp_path, device_table, args, message):
    wide, own, _ = device_table
    args = [str(a).format(wide=wide, own=own) for a in args]
    result = cli("profile", "--space", "nb201", "--input-shape", "3x32x32", "--profiles-dir", tmp_path / "p", *args)
    assert result.exit_code != 0 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_contradicting_transfer_flags_are_refused(cli, tmp_path):
    result = cli("predictors", "fit", "latency", "--device", "x", "--transfer-from", "a", "--no-transfer",
                 "--profiles-dir", tmp_path)
    assert result.exit_code == 2 and "contradict" in result.stderr
    result = cli("search", "--latency-budget", "1ms", "--transfer-from", "a", "--no-transfer")
    assert result.exit_code == 2 and "contradict" in result.stderr


def test_profile_prints_the_predictors_quality(cli, tmp_path, monkeypatch, synthetic, strings):
    """After measuring, ``hwnas profile`` says how good the device's latency predictor is and what more would
    do (measurements stubbed: the synthetic target device)."""
    from hwnas.devices import local as device_local

    def fake(space, arch, input_shape, num_classes, **kwargs):
        arch = space.parse(arch) if isinstance(arch, str) else arch
        return make_record(space=space.name, arch=arch, input_shape=input_shape, num_classes=num_classes,
                           stats={"median_ms": float(synthetic["target"][arch.string]), "converged": True})

    monkeypatch.setattr(device_local, "profile_arch", fake)
    profiles = tmp_path / "profiles"
    write_profile(profiles, "pub-a", dict(list(synthetic["a"].items())[:2000]))
    args = ["profile", "--device", "new", "--space", "nb201", "--input-shape", "3x32x32", "--profiles-dir", profiles,
            "--samples", "20", "--no-progress"]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "measured 20 nb201 architectures" in result.output
    assert "latency predictor transferred from 1 profile(s), cross-validated on 20 own measurements" in result.output
    alone = cli(*args, "--no-transfer")
    assert alone.exit_code == 0 and "nothing to measure" in alone.output
    assert "on its own measurements (XGBoost, no transfer source)" in alone.output


def test_a_search_transfers_and_records_its_sources(cli, tmp_path, strings, synthetic):
    """A table-latency search whose device has 20 rows: its latency predictor transfers from the profiles of the
    same task, config.json records them, a resume uses the recorded ones (a removed one skipped with a line),
    and --no-transfer searches as before."""
    chosen = strings
    (tmp_path / "acc.csv").write_text("arch,accuracy\n" + "".join(
        f"{s},{0.5 + 0.07 * s.count('conv_3x3') + 0.03 * s.count('conv_1x1')}\n" for s in chosen))
    (tmp_path / "lat.csv").write_text("arch,latency_ms\n" + "".join(
        f"{s},{synthetic['target'][s]:.6f}\n" for s in chosen))
    (tmp_path / "wide.csv").write_text("arch,a,b\n" + "".join(
        f"{s},{synthetic['a'][s]:.6f},{synthetic['b'][s]:.6f}\n" for s in chosen))
    profiles = tmp_path / "profiles"
    imported = cli("profile", "--latency-table", tmp_path / "wide.csv", "--columns", "all", "--space", "nb201",
                   "--input-shape", "3x32x32", "--profiles-dir", profiles)
    assert imported.exit_code == 0, imported.stderr
    lines = []  # the digits task (1x8x8) finds no source at 3x32x32, and says so
    assert find_sources(profiles, SourceTask("nb201", (1, 8, 8), {}), target="table-lat", report=lines.append) == []
    assert lines == ["no transfer: a, b hold nb201 latencies at other input shapes or space options than 1x8x8, "
                     "not this task's"]
    again = cli("profile", "--latency-table", tmp_path / "wide.csv", "--columns", "all", "--space", "nb201",
                "--dataset", "digits", "--profiles-dir", profiles)  # now at the digits task's shape too
    assert again.exit_code == 0, again.stderr
    args = ["search", "--space", "nb201", "--accuracy-table", tmp_path / "acc.csv", "--latency-table",
            tmp_path / "lat.csv", "--latency-budget", "1.2ms", "--initial-trainings", "3", "--candidates-per-round",
            "2", "--archs-per-round", "60", "--profile-samples", "20", "--profiles-dir", profiles,
            "--store", tmp_path / "evals.sqlite"]
    result = cli(*args, "--max-trainings", "5", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert "latency predictor: transfers from 2 other device profile(s) (a, b)" in result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["transfer"] is True and config["transfer_sources"] == ["a", "b"]
    assert config["transfer_source_records"] == {"a": len(chosen), "b": len(chosen)}
    snapshots = sorted((tmp_path / "run").rglob("latency/meta.json"))
    assert snapshots and json.loads(snapshots[-1].read_text())["algorithm"] == "transfer"

    import shutil

    shutil.rmtree(profiles / "b")
    resumed = cli("search", "--resume", tmp_path / "run", "--max-trainings", "7")
    assert resumed.exit_code == 0, resumed.stderr
    assert "transfer source 'b' skipped: no such profile" in resumed.output
    assert "transfers from 1 other device profile(s) (a)" in resumed.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["transfer_sources"] == ["a", "b"]

    alone = cli(*args, "--max-trainings", "5", "--run-dir", tmp_path / "alone", "--no-transfer")
    assert alone.exit_code == 0, alone.stderr
    assert "transfers from" not in alone.output
    config = json.loads((tmp_path / "alone" / "config.json").read_text())
    assert config["transfer"] is False and config["transfer_sources"] is None
    snapshots = sorted((tmp_path / "alone").rglob("latency/meta.json"))
    assert snapshots and "algorithm" not in json.loads(snapshots[-1].read_text())


def test_runs_made_before_transfer_resume_without_it():
    from hwnas.search.config import RunConfig

    old = RunConfig(budget_ms=1.0, input_shape=(1, 8, 8), num_classes=10).to_json()
    for key in ("transfer", "transfer_from", "transfer_sources"):
        old.pop(key)
    assert RunConfig.from_json(old).transfer is False
    with pytest.raises(Exception, match="transfer_from must be a list"):
        RunConfig(budget_ms=1.0, transfer_from="a,b")


def test_a_device_out_of_reach_with_20_measurements_predicts_by_transfer(cli, tmp_path, strings, synthetic):
    """A phone whose profile holds 20 measurements (brought back from it) and published tables of two other
    devices: the search predicts the phone's latencies of unmeasured candidates by transfer."""
    (tmp_path / "acc.csv").write_text("arch,accuracy\n" + "".join(
        f"{s},{0.5 + 0.07 * s.count('conv_3x3') + 0.03 * s.count('conv_1x1')}\n" for s in strings))
    (tmp_path / "wide.csv").write_text("arch,a,b\n" + "".join(
        f"{s},{synthetic['a'][s]:.6f},{synthetic['b'][s]:.6f}\n" for s in strings[::5]))
    own = strings[3::700][:20]
    (tmp_path / "phone.csv").write_text("arch,latency_ms\n" + "".join(
        f"{s},{synthetic['target'][s]:.6f}\n" for s in own))
    profiles = tmp_path / "profiles"
    for table, extra in ((tmp_path / "wide.csv", ["--columns", "all"]),
                         (tmp_path / "phone.csv", ["--device", "phone"])):
        result = cli("profile", "--latency-table", table, *extra, "--space", "nb201", "--dataset", "digits",
                     "--profiles-dir", profiles)
        assert result.exit_code == 0, result.stderr
    result = cli("search", "--space", "nb201", "--accuracy-table", tmp_path / "acc.csv", "--device", "phone",
                 "--latency-budget", "1.2ms", "--max-trainings", "4", "--initial-trainings", "3",
                 "--candidates-per-round", "2", "--archs-per-round", "60", "--profiles-dir", profiles,
                 "--store", tmp_path / "evals.sqlite", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert "transfers from 2 other device profile(s) (a, b)" in result.output
    assert "cannot be measured from here" in result.output
    import csv

    with (tmp_path / "run" / "verified.csv").open() as handle:
        predicted = [row for row in csv.DictReader(handle) if row["latency_measured"] == "False"]
    assert predicted  # candidates outside the 20 got transferred predictions, close to the phone's truth
    for row in predicted:
        assert float(row["latency_ms"]) == pytest.approx(synthetic["target"][row["arch"]], rel=0.15)


# -- the additive model and the selection ---------------------------------------------------------------------
def test_operator_terms_count_what_the_block_runs():
    from hwnas.nn.analysis import op_terms
    from hwnas.nn.blocks import InvertedResidual

    block = InvertedResidual(24, 24, kernel=5, expand=3, stride=1, se=True)  # 1x1 expand, 5x5 dw, SE, 1x1 project
    terms = op_terms(block, (24, 8, 8))
    assert terms["conv_n"] == 3 and terms["dw_n"] == 1 and terms["se_n"] == 1
    assert terms["pw_macs"] == 24 * 72 * 64 * 2 and terms["pw_macs_p16"] == 32 * 80 * 64 * 2  # 24->32, 72->80
    assert terms["dw_macs"] == 72 * 25 * 64 and terms["dw_macs_p16"] == 80 * 25 * 64
    assert terms["se_elems"] == 72 * 64 and terms["se_macs"] == 2 * 72 * 18  # gate; its two 1x1 convolutions
    plain = op_terms(InvertedResidual(24, 32, kernel=3, expand=1, stride=2, se=False), (24, 8, 8))
    assert plain["conv_n"] == 2 and plain["se_n"] == 0 and plain["dw_macs"] == 24 * 9 * 16


def test_additive_model_fits_a_sum_of_operator_costs(tmp_path, strings, synthetic):
    from hwnas.predictors import AdditiveLatencyPredictor, PredictorError

    own = strings[5::400][:30]
    model = AdditiveLatencyPredictor(**NB201).fit(own, [synthetic["b"][s] for s in own])
    truth = np.array([synthetic["b"][s] for s in strings])
    assert within(truth, model.predict(strings), 0.10) >= 0.99  # device b adds up per operation
    costs = model.costs()
    assert costs["const"] > 0 and all(v >= 0 for v in costs.values())
    model.save(tmp_path / "add")
    loaded = XGBPredictor.load(tmp_path / "add")
    assert isinstance(loaded, AdditiveLatencyPredictor)
    assert np.allclose(loaded.predict(strings[:50]), model.predict(strings[:50]))
    meta = json.loads((tmp_path / "add" / "meta.json").read_text())
    meta["coef"][0][1] = -1.0
    (tmp_path / "add" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorError, match="non-negative costs"):
        XGBPredictor.load(tmp_path / "add")


def test_selection_keeps_the_candidate_that_cross_validates_best(tmp_path, strings, synthetic):
    from hwnas.predictors import AdditiveLatencyPredictor
    from hwnas.predictors.select import SelectedLatencyPredictor

    own = strings[5::400][:30]
    sources = sources_of(synthetic, "ab")
    for device, expected in (("b", AdditiveLatencyPredictor), ("target", TransferLatencyPredictor)):
        selector = SelectedLatencyPredictor(sources if device == "target" else [], **NB201).fit(
            own, [synthetic[device][s] for s in own])
        assert isinstance(selector.model_, expected), selector.selection_
        best = selector.selection_[selector.chosen_]["within_10pct"]
        assert best == max(score["within_10pct"] for score in selector.selection_.values())
    selector.save(tmp_path / "sel")
    meta = json.loads((tmp_path / "sel" / "meta.json").read_text())
    assert meta["algorithm"] == "transfer" and meta["scores"]["selection"]["chosen"] == "transfer"
    assert set(meta["scores"]["selection"]["candidates"]) == {"transfer", "additive", "xgboost"}
    assert isinstance(SelectedLatencyPredictor.load(tmp_path / "sel"), TransferLatencyPredictor)
    few = SelectedLatencyPredictor([], **NB201).fit(own[:4], [synthetic["b"][s] for s in own[:4]])
    assert few.chosen_ == "xgboost" and few.selection_ == {}  # too few to cross-validate: as before


def test_a_device_table_is_refused_whole_when_one_profile_holds_measurements(cli, tmp_path, device_table, synthetic):
    wide, _, _ = device_table
    profiles = tmp_path / "profiles"
    write_profile(profiles, "pub-b", dict(list(synthetic["b"].items())[:30]))  # real measurements
    common = ["--space", "nb201", "--input-shape", "3x32x32", "--profiles-dir", profiles, "--latency-table", wide,
              "--columns", "all", "--device-prefix", "pub-"]
    result = cli("profile", *common)
    assert result.exit_code == 1 and "profile 'pub-b' holds real measurements" in result.stderr
    assert sorted(p.name for p in profiles.iterdir()) == ["pub-b"]  # nothing written before the refusal
    in_runtime = cli("profile", *common[:-1], "ov-", "--runtime", "openvino")
    assert in_runtime.exit_code == 0, in_runtime.stderr
    assert {"ov-a.openvino", "ov-b.openvino", "ov-c.openvino"} <= {p.name for p in profiles.iterdir()}
