"""The measurement protocol: statistics (with a fake clock), sessions, providers, export for measurement."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hwnas.runtimes import onnxruntime as providers
from hwnas.profiling.errors import MeasurementError, ProviderError
from hwnas.profiling.measure import (Conditions, LatencyStats, Protocol, export_for_measurement, median_ci,
                                     median_rel_ci, measure_latency, profile_arch, time_callable)
from hwnas.spaces import create_space

TINY = dict(warmup=2, min_runs=10, max_runs=40, max_seconds=0.5)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def runner(self, durations_ms):
        """A callable that takes the next duration from ``durations_ms`` (cycling) each time it runs."""
        durations = list(durations_ms)
        calls = {"n": 0}

        def run() -> None:
            self.now += durations[calls["n"] % len(durations)] / 1e3
            calls["n"] += 1

        run.calls = calls
        return run


def tiny_model(shape=(1, 1, 4, 4)) -> bytes:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["logits"])], "tiny", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


# -- statistics ----------------------------------------------------------------------------------------------
def test_constant_runs_converge_at_the_minimum():
    clock = FakeClock()
    run = clock.runner([2.0])
    stats = time_callable(run, warmup=3, min_runs=20, max_runs=500, max_seconds=10, timer=clock)
    assert stats.runs == 20 and run.calls["n"] == 23
    assert stats.median_ms == pytest.approx(2.0) and stats.p10_ms == pytest.approx(2.0)
    assert stats.p90_ms == pytest.approx(2.0) and stats.std_ms == pytest.approx(0.0, abs=1e-9)
    assert stats.converged and stats.rel_ci == pytest.approx(0.0, abs=1e-9)
    assert stats.warmup_s == pytest.approx(0.006) and stats.timed_s == pytest.approx(0.040)


def test_warmup_runs_are_not_timed():
    clock = FakeClock()
    stats = time_callable(clock.runner([500.0, 400.0, 300.0] + [1.0] * 1000), warmup=3, min_runs=30,
                          max_runs=100, max_seconds=10, timer=clock)
    assert stats.median_ms == pytest.approx(1.0) and stats.p90_ms == pytest.approx(1.0)
    assert stats.warmup_runs == 3 and stats.warmup_s == pytest.approx(1.2)


def test_spread_that_never_settles_runs_to_the_cap():
    clock = FakeClock()
    stats = time_callable(clock.runner([1.0, 3.0]), warmup=0, min_runs=10, max_runs=60, max_seconds=100,
                          target_rel_ci=0.02, timer=clock)
    assert stats.runs == 60 and not stats.converged and stats.rel_ci > 0.02
    assert stats.p10_ms == pytest.approx(1.0) and stats.p90_ms == pytest.approx(3.0)
    assert stats.mean_ms == pytest.approx(2.0) and stats.std_ms == pytest.approx(1.0)


def test_time_cap_stops_slow_models_before_min_runs():
    clock = FakeClock()
    stats = time_callable(clock.runner([125.0]), warmup=1, min_runs=50, max_runs=500, max_seconds=1.5,
                          timer=clock)
    assert stats.runs == 12  # twelve 125 ms runs fill the 1.5-second cap
    assert stats.converged  # twelve identical runs: the median is known


def test_noisy_runs_stop_once_the_median_is_stable():
    rng = np.random.default_rng(0)
    clock = FakeClock()
    durations = 1.0 + 0.05 * rng.standard_normal(5000)
    stats = time_callable(clock.runner(durations), warmup=0, min_runs=10, max_runs=5000, max_seconds=100,
                          target_rel_ci=0.01, timer=clock)
    assert stats.converged and 10 < stats.runs < 5000
    assert stats.rel_ci <= 0.01 and stats.median_ms == pytest.approx(1.0, rel=0.02)


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true_median = math.log(2.0)  # of the standard exponential distribution (skewed like run times)
    hits = 0
    trials = 600
    for _ in range(trials):
        lo, hi = median_ci(rng.exponential(size=120))
        hits += lo <= true_median <= hi
    assert 0.92 <= hits / trials <= 0.99


def test_median_rel_ci_shrinks_with_more_runs():
    rng = np.random.default_rng(1)
    few, many = rng.exponential(size=50) + 1, rng.exponential(size=5000) + 1
    assert median_rel_ci(many) < median_rel_ci(few) / 4
    assert median_rel_ci([]) == math.inf


def test_stats_to_dict_is_json_ready():
    clock = FakeClock()
    stats = time_callable(clock.runner([1.0, 2.0]), warmup=0, min_runs=10, max_runs=10, max_seconds=10,
                          timer=clock)
    data = stats.to_dict()
    assert set(data) == {"median_ms", "p10_ms", "p90_ms", "mean_ms", "std_ms", "min_ms", "runs", "converged",
                         "rel_ci"}
    assert isinstance(stats, LatencyStats) and data["runs"] == 10


@pytest.mark.parametrize("kwargs", [dict(min_runs=0), dict(min_runs=10, max_runs=5), dict(warmup=-1),
                                    dict(max_seconds=0)])
def test_bad_protocols_are_refused(kwargs):
    with pytest.raises(ValueError):
        Protocol(**kwargs)


# -- real sessions ------------------------------------------------------------------------------------------
def test_measure_latency_with_a_fake_clock_reports_the_clock():
    calls = {"n": 0}

    def timer() -> float:  # every reading 0.5 ms after the previous one
        calls["n"] += 1
        return calls["n"] * 0.0005

    stats = measure_latency(tiny_model(), (1, 4, 4), timer=timer, **TINY)
    assert stats.median_ms == pytest.approx(0.5) and stats.runs == 10 and stats.converged


def test_measure_latency_really_runs():
    stats = measure_latency(tiny_model(), (1, 4, 4), **TINY)
    assert 0 < stats.p10_ms <= stats.median_ms <= stats.p90_ms
    assert 10 <= stats.runs <= 40 and stats.session_s > 0


def test_measure_latency_checks_the_input_shape():
    with pytest.raises(MeasurementError, match="does not match"):
        measure_latency(tiny_model(), (3, 4, 4), **TINY)
    with pytest.raises(MeasurementError, match="does not match"):
        measure_latency(tiny_model(), (1, 4, 4), batch_size=2, **TINY)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_profile_arch_exports_and_measures(precision):
    space = create_space("mobilenet")
    arch = space.parse("16:k3e1/24:k3e1/32:k3e1/48:k3e1")
    record = profile_arch(space, arch.string, (1, 8, 8), 10, conditions=Conditions(precision=precision),
                          protocol=Protocol(**TINY))
    assert record["arch"] == arch.string and record["arch_id"] == arch.id and record["space"] == "mobilenet"
    assert record["input_shape"] == [1, 8, 8] and record["median_ms"] > 0 and record["runs"] >= 10
    assert record["source"] == "measured" and "T" in record["timestamp"]


def test_fp16_export_has_half_precision_weights():
    space = create_space("mobilenet")
    arch = space.parse("16:k3e1/24:k3e1/32:k3e1/48:k3e1")
    model = onnx.load_from_string(export_for_measurement(space, arch, (1, 8, 8), 10, precision="fp16"))
    types = {init.data_type for init in model.graph.initializer}
    assert TensorProto.FLOAT16 in types
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT


def test_unknown_precision_is_refused():
    with pytest.raises(MeasurementError, match="precision"):
        Conditions(precision="int4")


# -- providers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_missing_gpu_provider_names_onnxruntime_gpu(provider):
    with pytest.raises(ProviderError, match="onnxruntime-gpu"):
        providers.check_provider(provider, available=["CPUExecutionProvider"])


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_gpu_providers_fail_clearly_on_this_machine(provider):
    wanted = providers.provider_list(provider)[0]
    if wanted in providers._available():
        pytest.skip(f"{wanted} is installed here")
    with pytest.raises(ProviderError, match="not available"):
        measure_latency(tiny_model(), (1, 4, 4), provider=provider, **TINY)


def test_unknown_provider():
    with pytest.raises(ProviderError, match="unknown provider 'npu'"):
        providers.provider_list("npu")


def test_no_silent_fallback_when_the_session_drops_the_provider(monkeypatch):
    import onnxruntime as ort

    class FellBack:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def get_providers(self):
            return ["CPUExecutionProvider"]

    monkeypatch.setattr(providers, "_available", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", FellBack)
    with pytest.raises(ProviderError, match="refusing to measure"):
        providers.create_session(tiny_model(), provider="cuda")
