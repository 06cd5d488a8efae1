"""Device profile store, fingerprints, sampling, latency tables and resumable runs (no real measurement)."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

from hwnas.profiling import runner
from hwnas.profiling.errors import ProfileError
from hwnas.profiling.fingerprint import SCHEMA_VERSION, host_fingerprint, mismatches, table_fingerprint
from hwnas.profiling.measure import Conditions, make_record
from hwnas.profiling.runner import RunSummary, import_table, profile_space
from hwnas.profiling.sampling import macs_size_fn, model_macs, stratified_sample
from hwnas.profiling.store import ProfileStore, list_devices, normalize_space_options
from hwnas.profiling.tables import parse_latency_table
from hwnas.spaces import create_space

SHAPE = (1, 8, 8)


@pytest.fixture
def space():
    return create_space("mobilenet")


def fake_record(space, arch, median=1.0, shape=SHAPE):
    arch = space.parse(arch) if isinstance(arch, str) else arch
    return make_record(space=space.name, arch=arch, input_shape=shape, num_classes=10,
                       stats={"median_ms": median, "runs": 20, "converged": True, "rel_ci": 0.01,
                              "p10_ms": median * 0.9, "p90_ms": median * 1.1})


def new_store(tmp_path, device="host", threads=1) -> ProfileStore:
    store = ProfileStore(tmp_path, device)
    store.ensure(host_fingerprint(device, Conditions(threads=threads)))
    return store


def cheap_size(arch) -> float:
    """A stand-in for MACs: grows with widths, depths, kernels and expansions, like the real thing."""
    total = 0.0
    for label, value in arch.items():
        if label.endswith(".width"):
            width = value
        elif label.endswith(".expand"):
            total += width * width * value
        elif label.endswith(".kernel"):
            total += width * value * value
    return total


# -- store -------------------------------------------------------------------------------------------------
def test_add_and_reload(tmp_path, space, rng):
    store = new_store(tmp_path)
    archs = [space.sample(rng) for _ in range(5)]
    for i, arch in enumerate(archs):
        assert store.add(fake_record(space, arch, median=1.0 + i))
    assert not store.add(fake_record(space, archs[0]))  # one measurement per architecture
    again = ProfileStore.open(tmp_path, "host")
    assert [r["arch"] for r in again.records()] == [a.string for a in archs]
    assert again.has("mobilenet", archs[2], SHAPE) and again.has(space, archs[2].string, SHAPE)
    assert not again.has("mobilenet", archs[2], (3, 32, 32))
    assert len(again.records(space, SHAPE)) == 5 and again.records("nb201") == []
    assert again.fingerprint["threads"] == 1 and again.fingerprint["schema_version"] == SCHEMA_VERSION
    assert list_devices(tmp_path) == ["host"]


def test_torn_final_line_is_ignored_then_repaired(tmp_path, space, rng, caplog):
    store = new_store(tmp_path)
    first, second = space.sample(rng), space.sample(rng)
    store.add(fake_record(space, first))
    path = store.measurements_file
    with open(path, "ab") as handle:  # an append cut short by a crash
        handle.write(b'{"space": "mobilenet", "arch": "16:k3')
    reread = ProfileStore(tmp_path, "host")
    with caplog.at_level(logging.WARNING):
        assert [r["arch"] for r in reread.records()] == [first.string]
    assert "interrupted final line" in caplog.text
    reread.add(fake_record(space, second))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["arch"] for line in lines] == [first.string, second.string]


def test_complete_final_line_without_newline_is_kept(tmp_path, space, rng):
    store = new_store(tmp_path)
    first, second = space.sample(rng), space.sample(rng)
    store.measurements_file.write_text(json.dumps(fake_record(space, first)))  # hand-edited, no newline
    reread = ProfileStore(tmp_path, "host")
    reread.add(fake_record(space, second))
    assert [r["arch"] for r in ProfileStore(tmp_path, "host").records()] == [first.string, second.string]


@pytest.mark.parametrize("bad", [b"{not json\n", b"[1, 2]\n", b"\xff\xfe\n"])
def test_corrupt_measurements_fail_clearly_and_nothing_is_written(tmp_path, space, rng, bad):
    store = new_store(tmp_path)
    store.add(fake_record(space, space.sample(rng)))
    path = store.measurements_file
    with open(path, "ab") as handle:
        handle.write(bad + path.read_bytes())
    before = path.read_bytes()
    reread = ProfileStore(tmp_path, "host")
    with pytest.raises(ProfileError, match=r"measurements\.jsonl: line 2"):
        reread.add(fake_record(space, space.sample(rng)))
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", ["{broken", "[]", '{"schema_version": "1"}'])
def test_corrupt_device_json(tmp_path, content):
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "device.json").write_text(content)
    with pytest.raises(ProfileError, match="device.json"):
        ProfileStore.open(tmp_path, "host")
    with pytest.raises(ProfileError, match="device.json"):
        ProfileStore(tmp_path, "host").ensure(host_fingerprint("host", Conditions()))
    assert (folder / "device.json").read_text() == content


def test_newer_schema_is_refused(tmp_path):
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "device.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ProfileError, match="upgrade hwnas"):
        ProfileStore.open(tmp_path, "host")


def test_fingerprint_write_is_atomic(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(ProfileError, match="No space left"):
        new_store(tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "host").iterdir()) == []  # no device.json, no temporary file


def test_fingerprint_mismatch_is_refused(tmp_path):
    store = new_store(tmp_path, threads=1)
    before = store.device_file.read_text()
    with pytest.raises(ProfileError, match=r"threads: 1 in the profile, 2 now.*another --device"):
        ProfileStore(tmp_path, "host").ensure(host_fingerprint("host", Conditions(threads=2)))
    assert store.device_file.read_text() == before
    ProfileStore(tmp_path, "host").ensure(host_fingerprint("host", Conditions(threads=1)))  # same: fine


def test_mismatches_compare_conditions_only():
    base = host_fingerprint("a", Conditions())
    other = {**base, "device": "b", "created": "later", "os": "Other", "cpu_cores": 64}
    assert mismatches(base, other) == []
    newer_runtime = {**base, "runtime_version": "0.1"}
    assert [k for k, _, _ in mismatches(base, newer_runtime)] == ["runtime_version"]
    assert [k for k, _, _ in mismatches(base, {**base, "runtime": "openvino"})] == ["runtime"]
    # a profile made before runtimes existed is onnxruntime's, at its onnxruntime_version
    old = {k: v for k, v in base.items() if k not in ("runtime", "runtime_version")}
    assert mismatches(old, base) == []
    assert [k for k, _, _ in mismatches({**old, "onnxruntime_version": "0.1"}, base)] == ["runtime_version"]
    assert [k for k, _, _ in mismatches(base, {**base, "cpu_model": "Other CPU"})] == ["cpu_model"]
    assert "source" in [k for k, _, _ in mismatches(base, table_fingerprint("a", "t.csv"))]


def test_profile_is_independent_of_the_reading_host(tmp_path, space, rng, monkeypatch):
    store = new_store(tmp_path)
    store.add(fake_record(space, space.sample(rng)))
    (tmp_path / "host").rename(tmp_path / "pi")  # copied to the search host under another name
    monkeypatch.setattr("hwnas.profiling.fingerprint.cpu_model", lambda: "some other CPU")
    reread = ProfileStore.open(tmp_path, "pi")
    assert len(reread.records()) == 1 and reread.fingerprint["device"] == "host"
    text = (tmp_path / "pi" / "device.json").read_text() + reread.measurements_file.read_text()
    assert str(tmp_path) not in text  # no absolute path of the measuring host


def test_open_unknown_profile_lists_known(tmp_path):
    new_store(tmp_path, device="pi4")
    with pytest.raises(ProfileError, match=r"no profile 'nope'.*known: pi4"):
        ProfileStore.open(tmp_path, "nope")


@pytest.mark.parametrize("name", ["../x", "", ".hidden", "a/b", "x" * 65])
def test_bad_device_names(tmp_path, name):
    with pytest.raises(ProfileError, match="device name"):
        ProfileStore(tmp_path, name)


def test_lock_keeps_a_second_writer_out(tmp_path):
    pytest.importorskip("fcntl")
    with ProfileStore(tmp_path, "host").lock():
        with pytest.raises(ProfileError, match="another hwnas process"):
            with ProfileStore(tmp_path, "host").lock():
                pass
    with ProfileStore(tmp_path, "host").lock():  # released
        pass


def test_space_options_equal_to_defaults_are_dropped():
    assert normalize_space_options("nb201", {"channels": 16}) == {}
    assert normalize_space_options("nb201", {"channels": 8, "cells_per_stage": 5}) == {"channels": 8}


# -- sampling ----------------------------------------------------------------------------------------------
def test_stratified_sample_covers_more_of_the_range_than_uniform(space):
    rng = np.random.default_rng(0)
    uniform = np.log([cheap_size(space.sample(rng)) for _ in range(60)])
    picked = stratified_sample(space, 60, rng=np.random.default_rng(0), size_fn=cheap_size)
    strat = np.log([cheap_size(a) for a in picked])
    assert len({a.string for a in picked}) == 60
    assert strat.std() > 1.3 * uniform.std()
    assert strat.min() < uniform.min() and strat.max() > uniform.max()


@pytest.mark.parametrize("name, shape", [("mobilenet", (1, 8, 8)), ("nb201", (3, 16, 16))])
def test_macs_size_fn_counts_the_built_model(name, shape, rng):
    space = create_space(name)
    size = macs_size_fn(space, shape, 10)
    for arch in [space.sample(rng) for _ in range(3)]:
        assert size(arch) == model_macs(space, arch, shape, 10) > 0


def test_stratified_sample_is_deterministic_and_avoids_existing(space):
    first = stratified_sample(space, 20, rng=np.random.default_rng(3), size_fn=cheap_size)
    again = stratified_sample(space, 20, rng=np.random.default_rng(3), size_fn=cheap_size)
    assert [a.string for a in first] == [a.string for a in again]
    more = stratified_sample(space, 20, rng=np.random.default_rng(3), size_fn=cheap_size, existing=first)
    assert not {a.string for a in more} & {a.string for a in first}


def hashed_size(arch) -> float:
    """A size spread uniformly on a log scale over 1..1000 (from the arch id), for exact coverage checks."""
    return 1000.0 ** (int(arch.id, 16) / 16**12)


def test_stratified_sample_fills_gaps_left_by_existing(space):
    middle = 1000.0 ** 0.5

    def upper_share(archs):
        return np.mean([hashed_size(a) >= middle for a in archs])

    gains = []
    for seed in range(4):
        earlier = stratified_sample(space, 60, rng=np.random.default_rng(seed), size_fn=hashed_size)
        lower = [a for a in earlier if hashed_size(a) < middle]  # a previous run covered the lower half
        added = stratified_sample(space, 20, rng=np.random.default_rng(seed + 10), size_fn=hashed_size,
                                  existing=lower)
        fresh = stratified_sample(space, 20, rng=np.random.default_rng(seed + 10), size_fn=hashed_size)
        gains.append(upper_share(added) - upper_share(fresh))
    assert np.mean(gains) >= 0.25  # the new picks go where the earlier run left the range empty


def test_stratified_sample_in_a_small_space():
    tiny = create_space("mobilenet", widths=((8,), (8,), (8,), (8,)), depths=(1,), kernels=(3, 5),
                        expansions=(1,))
    everything = stratified_sample(tiny, tiny.size(), rng=np.random.default_rng(0), size_fn=cheap_size)
    assert len({a.string for a in everything}) == tiny.size()
    with pytest.raises(Exception, match="holds only"):
        stratified_sample(tiny, tiny.size() + 1, rng=np.random.default_rng(0), size_fn=cheap_size)


# -- resumable runs (measurement faked) ----------------------------------------------------------------------
@pytest.fixture
def fake_measure(monkeypatch):
    calls = {"n": 0, "fail_at": None}

    def profile_arch(space, arch, input_shape, num_classes, *, conditions, space_options, protocol, seed):
        calls["n"] += 1
        if calls["fail_at"] == calls["n"]:
            raise KeyboardInterrupt
        return fake_record(space, arch, median=cheap_size(arch) / 1e4, shape=input_shape)

    monkeypatch.setattr(runner, "profile_arch", profile_arch)
    return calls


def test_runs_resume_and_only_add_what_is_missing(tmp_path, space, fake_measure):
    store = ProfileStore(tmp_path, "host")
    kwargs = dict(input_shape=SHAPE, num_classes=10, size_fn=cheap_size)
    first = profile_space(store, space, samples=6, **kwargs)
    assert (first.measured, first.held_after) == (6, 6) and fake_measure["n"] == 6
    again = profile_space(ProfileStore(tmp_path, "host"), space, samples=6, **kwargs)
    assert again.measured == 0 and fake_measure["n"] == 6
    more = profile_space(ProfileStore(tmp_path, "host"), space, samples=9, **kwargs)
    assert (more.held_before, more.measured, more.held_after) == (6, 3, 9)
    other_shape = profile_space(ProfileStore(tmp_path, "host"), space, samples=2, input_shape=(3, 16, 16),
                                num_classes=10, size_fn=cheap_size)
    assert other_shape.measured == 2 and len(ProfileStore(tmp_path, "host").records()) == 11


def test_interrupted_run_keeps_finished_work(tmp_path, space, fake_measure):
    fake_measure["fail_at"] = 4
    summary = RunSummary()
    with pytest.raises(KeyboardInterrupt):
        profile_space(ProfileStore(tmp_path, "host"), space, samples=8, input_shape=SHAPE, num_classes=10,
                      size_fn=cheap_size, summary=summary)
    assert summary.measured == 3 and len(ProfileStore(tmp_path, "host").records()) == 3
    fake_measure["fail_at"] = None
    resumed = profile_space(ProfileStore(tmp_path, "host"), space, samples=8, input_shape=SHAPE,
                            num_classes=10, size_fn=cheap_size)
    archs = [r["arch"] for r in ProfileStore(tmp_path, "host").records()]
    assert resumed.measured == 5 and len(archs) == len(set(archs)) == 8


def test_provider_is_checked_before_anything_is_written(tmp_path, space, fake_measure, monkeypatch):
    monkeypatch.setattr("hwnas.runtimes.onnxruntime._available", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ProfileError, match="onnxruntime-gpu"):  # a ProviderError is a ProfileError
        profile_space(ProfileStore(tmp_path, "host"), space, samples=2, input_shape=SHAPE, num_classes=10,
                      conditions=Conditions(provider="cuda"), size_fn=cheap_size)
    assert list(tmp_path.iterdir()) == [] and fake_measure["n"] == 0


# -- latency tables ------------------------------------------------------------------------------------------
NB_A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
NB_B = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|"
NB_C = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def table_text() -> str:
    return "\n".join([
        "arch,latency_ms",           # 1 header
        f"{NB_A},1.25",              # 2 ok
        "",                          # 3 blank
        "# a comment",               # 4
        f"{NB_B},abc",               # 5 not a number
        "|bogus~0|,1.0",             # 6 does not parse
        f"{NB_B},0.75,extra",        # 7 three fields
        f"{NB_B},-1",                # 8 negative
        f"{NB_B},nan",               # 9 not finite
        f"{NB_A},1.3",               # 10 repeat
        f"{NB_B},0.75",              # 11 ok
        f"{NB_C},0.1",               # 12 ok
    ]) + "\n"


def test_latency_table_reports_bad_rows_by_line():
    rows, problems = parse_latency_table(table_text(), create_space("nb201"))
    assert [(r.line, r.latency_ms) for r in rows] == [(2, 1.25), (11, 0.75), (12, 0.1)]
    assert [p.line for p in problems] == [5, 6, 7, 8, 9, 10]
    assert "repeats line 2" in str(problems[-1]) and "not a number" in str(problems[0])


def test_import_table_builds_a_table_profile(tmp_path):
    table = tmp_path / "edge.csv"
    table.write_text(table_text())
    nb201 = create_space("nb201")
    store = ProfileStore(tmp_path / "profiles", "edge")
    summary = import_table(store, nb201, str(table), input_shape=(3, 32, 32), num_classes=10)
    assert summary.measured == 3 and len(summary.problems) == 6
    records = ProfileStore.open(tmp_path / "profiles", "edge").records("nb201", (3, 32, 32))
    assert [r["median_ms"] for r in records] == [1.25, 0.75, 0.1] and records[0]["source"] == "table"
    again = import_table(ProfileStore(tmp_path / "profiles", "edge"), nb201, str(table),
                         input_shape=(3, 32, 32), num_classes=10)
    assert again.measured == 0 and again.already == 3
    with pytest.raises(ProfileError, match="source"):  # tables and measurements are never mixed
        ProfileStore(tmp_path / "profiles", "edge").ensure(host_fingerprint("edge", Conditions()))


def test_table_without_usable_rows(tmp_path):
    table = tmp_path / "bad.csv"
    table.write_text("arch,latency_ms\nfoo,1\n")
    with pytest.raises(ProfileError, match="no usable"):
        import_table(ProfileStore(tmp_path, "x"), create_space("nb201"), str(table), input_shape=(3, 32, 32),
                     num_classes=10)
    assert not (tmp_path / "x").exists()
