"""``hwnas profile`` and ``hwnas profile show``: an end-to-end run with resume, and every error path."""

from __future__ import annotations

import json

import pytest

from hwnas.devices import local as device_local
from hwnas.runtimes import onnxruntime as providers
from hwnas.profiling.fingerprint import host_fingerprint
from hwnas.profiling.measure import Conditions, make_record
from hwnas.profiling.store import ProfileStore
from hwnas.spaces import create_space

NB_A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
NB_B = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def profile(cli, tmp_path, *args):
    return cli("profile", "--profiles-dir", tmp_path / "profiles", *args)


def make_profile(tmp_path, device="host", threads=1, records=()):
    store = ProfileStore(tmp_path / "profiles", device)
    store.ensure(host_fingerprint(device, Conditions(threads=threads)))
    for record in records:
        store.add(record)
    return store


@pytest.mark.slow
def test_profile_measures_resumes_and_shows(cli, tmp_path):
    first = profile(cli, tmp_path, "--device", "host", "--space", "mobilenet", "--dataset", "digits",
                    "--samples", "2")
    assert first.exit_code == 0, first.stderr
    assert "measured 2 mobilenet architectures at 1x8x8" in first.output
    more = profile(cli, tmp_path, "--device", "host", "--dataset", "digits", "--samples", "3")
    assert more.exit_code == 0 and "measured 1 " in more.output and "now holds 3" in more.output
    done = profile(cli, tmp_path, "--device", "host", "--samples", "3")  # digits is the default
    assert done.exit_code == 0 and "nothing to measure" in done.output
    shown = cli("profile", "show", "host", "--profiles-dir", tmp_path / "profiles")
    assert shown.exit_code == 0, shown.stderr
    assert "mobilenet at 1x8x8: 3 architectures" in shown.output and "converged" in shown.output
    assert "provider cpu, 1 thread(s), batch 1, fp32" in shown.output
    as_json = json.loads(cli("profile", "--profiles-dir", tmp_path / "profiles", "show", "host",
                             "--json").output)
    assert as_json["records"] == 3 and as_json["groups"][0]["count"] == 3
    assert as_json["fingerprint"]["threads"] == 1


def test_ctrl_c_keeps_finished_measurements(cli, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = device_local.profile_arch

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return {**real(*args, **kwargs)}

    monkeypatch.setattr(device_local, "profile_arch", interrupted)  # this machine's Device measures
    result = profile(cli, tmp_path, "--device", "host", "--samples", "5")
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert "1 mobilenet architectures at 1x8x8 measured before the interruption are kept" in result.output
    assert len(ProfileStore.open(tmp_path / "profiles", "host").records()) == 1


def test_latency_table_import_reports_bad_rows(cli, tmp_path):
    table = tmp_path / "edge.csv"
    table.write_text(f"arch,latency_ms\n{NB_A},2.5\nnot-an-arch,1.0\n{NB_B},-3\n{NB_B},1.5\n")
    result = profile(cli, tmp_path, "--device", "edge", "--space", "nb201", "--input-shape", "3x32x32",
                     "--latency-table", table)
    assert result.exit_code == 0, result.stderr
    assert "line 3:" in result.stderr and "line 4:" in result.stderr and "line 2" not in result.stderr
    assert "imported 2 nb201 latencies at 3x32x32" in result.output and "2 row(s) skipped" in result.output
    shown = cli("profile", "show", "edge", "--profiles-dir", tmp_path / "profiles")
    assert "published table(s): edge.csv" in shown.output and "1.500 ms .. 2.500 ms" in shown.output


def test_show_reports_latency_range_and_noise(cli, tmp_path):
    space = create_space("mobilenet")
    records = [make_record(space=space.name, arch=space.parse(arch), input_shape=(1, 8, 8), num_classes=10,
                           stats={"median_ms": m, "p10_ms": 0.9 * m, "p90_ms": 1.1 * m, "runs": 200,
                                  "converged": True, "rel_ci": 0.01})
               for arch, m in (("16:k3e1/24:k3e1/32:k3e1/48:k3e1", 0.2),
                               ("32:k7e6/48:k7e6/64:k7e6/96:k7e6", 0.8))]
    make_profile(tmp_path, records=records)
    shown = cli("profile", "show", "host", "--profiles-dir", tmp_path / "profiles")
    assert shown.exit_code == 0
    assert "0.200 ms .. 0.800 ms (median 0.500 ms)" in shown.output
    assert "+-1.00%" in shown.output and "spread 20.0%" in shown.output and "2/2 converged" in shown.output


# -- error paths: one clear line, non-zero exit, nothing overwritten -----------------------------------------
@pytest.mark.parametrize("args, message, code", [
    (["--device", "host", "--samples", "0"], "--samples", 2),
    (["--device", "host", "--samples", "many"], "--samples", 2),
    (["--device", "host", "--samples", "2", "--provider", "npu"], "'npu' is not one of", 2),
    (["--device", "host", "--samples", "2", "--precision", "int3"], "--precision", 2),
    (["--device", "host", "--samples", "2", "--threads", "0"], "--threads", 2),
    (["--device", "host", "--samples", "2", "--batch-size", "0"], "--batch-size", 2),
    (["--samples", "2"], "Missing option '--device'", 2),
    (["--device", "host"], "Missing option '--samples'", 2),
    (["--device", "host", "--samples", "2", "--dataset", "digits", "--input-shape", "1x8x8"], "not both", 2),
    (["--device", "host", "--samples", "2", "--input-shape", "8x8"], "CxHxW", 2),
    (["--device", "host", "--samples", "2", "--dataset", "imagenet"], "unknown data set 'imagenet'", 1),
    (["--device", "host", "--samples", "2", "--space", "nope"], "unknown search space 'nope'", 1),
    (["--device", "../up", "--samples", "2"], "device name", 1),
    (["--device", "host", "--latency-table", "/nonexistent.csv"], "does not exist", 2),
    (["--threads", "2", "show", "host"], "--threads does not apply to 'profile show'", 2),
    (["show", "nope"], "no profile 'nope'", 1),
    (["show"], "Missing argument 'DEVICE'", 2),
])
def test_cli_errors(cli, tmp_path, args, message, code):
    result = profile(cli, tmp_path, *args)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_too_many_samples_for_the_space(cli, tmp_path):
    result = profile(cli, tmp_path, "--device", "host", "--space", "nb201", "--input-shape", "3x8x8",
                     "--samples", "20000")
    assert result.exit_code == 1 and "holds only 15625" in result.stderr


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_missing_provider_fails_before_anything_is_created(cli, tmp_path, provider, monkeypatch):
    monkeypatch.setattr(providers, "_available", lambda: ["CPUExecutionProvider"])
    result = profile(cli, tmp_path, "--device", "gpu", "--samples", "2", "--provider", provider)
    assert result.exit_code == 1 and "onnxruntime-gpu" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "profiles").exists()


def test_table_needs_a_shape_and_no_samples(cli, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text(f"{NB_A},1.0\n")
    no_shape = profile(cli, tmp_path, "--device", "e", "--space", "nb201", "--latency-table", table)
    assert no_shape.exit_code == 2 and "--dataset or --input-shape" in no_shape.stderr
    with_samples = profile(cli, tmp_path, "--device", "e", "--space", "nb201", "--input-shape", "3x32x32",
                           "--latency-table", table, "--samples", "3")
    assert with_samples.exit_code == 2 and "--samples does not apply" in with_samples.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("arch,latency_ms\nbad,1\n")
    nothing = profile(cli, tmp_path, "--device", "e", "--space", "nb201", "--input-shape", "3x32x32",
                      "--latency-table", empty)
    assert nothing.exit_code == 1
    warning, error = nothing.stderr.strip().splitlines()
    assert "line 2: architecture does not parse" in warning
    assert error.startswith("Error: ") and "no usable" in error


def test_fingerprint_mismatch_via_cli(cli, tmp_path):
    store = make_profile(tmp_path, threads=1)
    before = store.device_file.read_bytes()
    result = profile(cli, tmp_path, "--device", "host", "--samples", "2", "--threads", "2")
    assert result.exit_code == 1
    assert "threads: 1 in the profile, 2 now" in result.stderr and "another --device" in result.stderr
    assert store.device_file.read_bytes() == before and not store.measurements_file.exists()


def test_table_into_a_measured_profile_is_refused(cli, tmp_path):
    make_profile(tmp_path)
    table = tmp_path / "t.csv"
    table.write_text(f"{NB_A},1.0\n")
    result = profile(cli, tmp_path, "--device", "host", "--space", "nb201", "--input-shape", "3x32x32",
                     "--latency-table", table)
    assert result.exit_code == 1 and "source" in result.stderr


@pytest.mark.parametrize("target, content", [
    ("device.json", b"{oops"),
    ("measurements.jsonl", b'{"space": "mobilenet"}\n{"space": "mobilenet", "input_shape": [1,8,8], '
                           b'"arch": "x", "median_ms": 1}\n'),
    ("measurements.jsonl", b"garbage\n{}\n"),
])
def test_corrupt_profile_gives_one_line_and_is_not_overwritten(cli, tmp_path, target, content):
    store = make_profile(tmp_path)
    path = store.path / target
    path.write_bytes(content)
    def files():  # the data files (the lock file is bookkeeping)
        return {p.name: p.read_bytes() for p in store.path.iterdir() if not p.name.startswith(".hwnas.lock")}

    snapshot = files()
    for args in (["--device", "host", "--samples", "1"], ["show", "host"]):
        result = profile(cli, tmp_path, *args)
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and target in lines[0] and "corrupt" in lines[0]
    assert files() == snapshot
