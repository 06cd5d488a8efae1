"""The measurement protocol: one module for profiling, search verification and the final export alike.

One latency figure is made like this:

1. the architecture is exported with the project's one exporter (:mod:`hwnas.onnx_export`, weights from a seed),
   checked with ``onnx.checker``;
2. one session of the run's runtime (:mod:`hwnas.runtimes`; onnxruntime by default: fixed intra/inter-op
   thread counts, all graph optimisations, the requested provider or an error) is opened for it and reused for
   every run;
3. ``warmup`` untimed runs absorb first-run costs (allocation, kernel selection, caches);
4. timed runs follow, each timed on its own, with Python's garbage collector paused: at least ``min_runs``,
   then on until the median is stable -- the 95% confidence interval of the median (distribution-free, from
   order statistics) is narrower than ``target_rel_ci`` of the median on either side -- or a cap is reached
   (``max_runs`` runs, or ``max_seconds`` of timed runs, which also cuts ``min_runs`` short for slow models);
5. the result is the median with p10/p90, mean, std, the number of runs and whether it converged.

The clock is injectable (``timer``) so that the statistics can be tested with a fake clock.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from hwnas.arch import Arch
from hwnas.profiling.errors import MeasurementError
from hwnas.runtimes import DEFAULT_RUNTIME, RUNTIMES, ModelFiles, RuntimeFailure, as_files, get_runtime
from hwnas.spaces.base import SearchSpace

PRECISIONS = ("fp32", "fp16")
_Z95 = 1.959963984540054
#: Fewer runs than this never count as converged, whatever their spread.
MIN_CONVERGED_RUNS = 10


@dataclass(frozen=True)
class Protocol:
    """How long to warm up and when to stop timing.

    The defaults suit models of 0.02-50 ms: a 0.1 ms model gets 200 timed runs (20 ms, cheap next to its
    0.15 s export) -- more than the confidence target needs, but a longer window averages out short
    disturbances from other processes, which is what decides the re-measurement noise; a 10 ms model stops at
    the one-second cap after about 100 runs.

    Attributes:
        warmup: Untimed runs before timing.
        min_runs: Timed runs always taken.
        max_runs: Cap on timed runs.
        max_seconds: Cap on the time spent in timed runs (a slow model stops here).
        target_rel_ci: Stop once the 95% confidence half-width of the median is below this share of it.
    """

    warmup: int = 10
    min_runs: int = 200
    max_runs: int = 5000
    max_seconds: float = 1.0
    target_rel_ci: float = 0.02

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_runs < 1 or self.max_runs < self.min_runs:
            raise ValueError(f"invalid protocol {self}: need warmup >= 0 and 1 <= min_runs <= max_runs")
        if self.max_seconds <= 0 or self.target_rel_ci <= 0:
            raise ValueError(f"invalid protocol {self}: max_seconds and target_rel_ci must be positive")


DEFAULT_PROTOCOL = Protocol()


@dataclass(frozen=True)
class Conditions:
    """The measurement conditions a device profile is made under (they belong in its fingerprint).

    Attributes:
        provider: ``cpu``, ``cuda`` or ``tensorrt``.
        threads: The runtime's CPU threads (onnxruntime's intra-op threads).
        batch_size: Inputs per run.
        precision: ``fp32``, or ``fp16`` (weights and arithmetic in half precision, float32 input/output).
        runtime: The runtime that runs the model (:mod:`hwnas.runtimes`).
    """

    provider: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    precision: str = "fp32"
    runtime: str = "onnxruntime"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise MeasurementError(f"unknown precision {self.precision!r} (known: {', '.join(PRECISIONS)})")
        if int(self.threads) < 1 or int(self.batch_size) < 1:
            raise MeasurementError("threads and batch size must be at least 1")
        from hwnas.shapes import check_batch

        check_batch(self.batch_size)
        if self.runtime not in RUNTIMES:
            raise MeasurementError(f"unknown runtime {self.runtime!r} (known: {', '.join(RUNTIMES.names())})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_CONDITIONS = Conditions()


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one model: statistics of the timed runs, in milliseconds.

    Attributes:
        median_ms: Median run time: *the* latency.
        p10_ms: 10th percentile.
        p90_ms: 90th percentile.
        mean_ms: Mean (sensitive to outliers; reported, not used).
        std_ms: Standard deviation.
        min_ms: Fastest run.
        runs: Number of timed runs.
        converged: Whether the median's relative 95% confidence half-width reached the target (with at least
            :data:`MIN_CONVERGED_RUNS` runs).
        rel_ci: That half-width divided by the median.
        warmup_runs: Untimed runs before timing.
        session_s: Seconds to create the session (0 when timing a plain callable).
        warmup_s: Seconds spent warming up.
        timed_s: Seconds spent in the timed loop.
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    runs: int
    converged: bool
    rel_ci: float
    warmup_runs: int = 0
    session_s: float = 0.0
    warmup_s: float = 0.0
    timed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the statistics (the bookkeeping times are left out)."""
        data = asdict(self)
        for key in ("warmup_runs", "session_s", "warmup_s", "timed_s"):
            data.pop(key)
        return data


def median_ci(times: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Distribution-free 95% confidence interval of the median.

    It runs between the order statistics around ``n/2`` given by the normal approximation to the binomial,
    ``n/2 -+ 1.96 sqrt(n)/2``; nothing is assumed about the shape of the distribution, which matters for run
    times (skewed, with a long tail).
    """
    values = np.sort(np.asarray(times, dtype=np.float64))
    n = len(values)
    if n == 0:
        return (-math.inf, math.inf)
    half = _Z95 * math.sqrt(n) / 2.0
    lo = max(int(math.floor(n / 2.0 - half)), 0)
    hi = min(int(math.ceil(n / 2.0 + half)), n - 1)
    return float(values[lo]), float(values[hi])


def median_rel_ci(times: Sequence[float] | np.ndarray) -> float:
    """Half-width of :func:`median_ci`, relative to the median (inf without runs)."""
    if len(times) == 0:
        return math.inf
    lo, hi = median_ci(times)
    median = float(np.median(np.asarray(times, dtype=np.float64)))
    return (hi - lo) / 2.0 / median if median > 0 else math.inf


def summarize(times_ms: Sequence[float] | np.ndarray, *, target_rel_ci: float = 0.02,
              **extra: Any) -> LatencyStats:
    """:class:`LatencyStats` of a list of run times in milliseconds."""
    values = np.asarray(times_ms, dtype=np.float64)
    if values.size == 0:
        raise MeasurementError("no timed runs to summarise")
    rel = median_rel_ci(values)
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    converged = values.size >= MIN_CONVERGED_RUNS and rel <= target_rel_ci
    return LatencyStats(median_ms=float(median), p10_ms=float(p10), p90_ms=float(p90),
                        mean_ms=float(values.mean()), std_ms=float(values.std()), min_ms=float(values.min()),
                        runs=int(values.size), converged=bool(converged), rel_ci=float(rel), **extra)


def time_callable(fn: Callable[[], Any], *, warmup: int = DEFAULT_PROTOCOL.warmup,
                  min_runs: int = DEFAULT_PROTOCOL.min_runs, max_runs: int = DEFAULT_PROTOCOL.max_runs,
                  max_seconds: float = DEFAULT_PROTOCOL.max_seconds,
                  target_rel_ci: float = DEFAULT_PROTOCOL.target_rel_ci,
                  timer: Callable[[], float] = time.perf_counter) -> LatencyStats:
    """Times ``fn`` with the protocol's warm-up and stopping rule (see the module docstring).

    Convergence is checked after ``min_runs`` runs and then every quarter more runs (so the check costs
    nothing noticeable); the loop also stops at ``max_runs`` runs or once ``max_seconds`` of timed runs have
    passed, converged or not.

    Args:
        fn: One run (e.g. one ``session.run``).
        warmup: Untimed runs first.
        min_runs: Timed runs always taken (unless ``max_seconds`` passes first).
        max_runs: Cap on timed runs.
        max_seconds: Cap on the time spent in timed runs.
        target_rel_ci: Convergence target for :func:`median_rel_ci`.
        timer: Clock in seconds (``time.perf_counter``; a fake one in tests).
    """
    Protocol(warmup=warmup, min_runs=min_runs, max_runs=max_runs, max_seconds=max_seconds,
             target_rel_ci=target_rel_ci)  # validates
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = timer()
        for _ in range(warmup):
            fn()
        warm = timer()
        times: list[float] = []
        next_check = min_runs
        while True:
            t0 = timer()
            fn()
            t1 = timer()
            times.append((t1 - t0) * 1e3)
            n = len(times)
            out_of_time = t1 - warm >= max_seconds
            if n >= next_check or n >= max_runs or out_of_time:
                if n >= min_runs and median_rel_ci(times) <= target_rel_ci:
                    break
                if n >= max_runs or out_of_time:
                    break
                next_check = n + max(10, n // 4)
        end = timer()
    finally:
        if gc_was_enabled:
            gc.enable()
    return summarize(times, target_rel_ci=target_rel_ci, warmup_runs=warmup,
                     warmup_s=float(warm - start), timed_s=float(end - warm))


def measure_latency(model_bytes: bytes | ModelFiles, input_shape: Sequence[int], *, batch_size: int = 1,
                    provider: str = "cpu", threads: int = 1, runtime: str = DEFAULT_RUNTIME,
                    warmup: int = DEFAULT_PROTOCOL.warmup,
                    min_runs: int = DEFAULT_PROTOCOL.min_runs, max_runs: int = DEFAULT_PROTOCOL.max_runs,
                    max_seconds: float = DEFAULT_PROTOCOL.max_seconds,
                    target_rel_ci: float = DEFAULT_PROTOCOL.target_rel_ci,
                    timer: Callable[[], float] = time.perf_counter, seed: int = 0,
                    isolated: bool | None = None) -> LatencyStats:
    """Latency of a serialised model under the measurement protocol, in ``runtime``.

    A runtime other than onnxruntime is timed in a process of its own (:mod:`hwnas.profiling.isolation`:
    onnxruntime in the same process slows it down), unless ``isolated`` is False or a fake ``timer`` is given.

    Args:
        model_bytes: The ONNX model, or the runtime's files (:data:`hwnas.runtimes.ModelFiles`); one input of
            shape ``(batch_size, *input_shape)``.
        input_shape: One input of the graph: ``(C, H, W)``, or ``(H, W, C)`` for a raw-input (uint8) model.
        batch_size: Inputs per run.
        provider: ``cpu``, ``cuda`` or ``tensorrt`` (never a silent CPU fallback).
        threads: The runtime's CPU threads.
        runtime: The runtime (:mod:`hwnas.runtimes`; ``onnxruntime`` by default).
        warmup: Untimed runs first.
        min_runs: Timed runs always taken.
        max_runs: Cap on timed runs.
        max_seconds: Cap on the time spent in timed runs.
        target_rel_ci: Stop once the median's relative 95% confidence half-width is below this.
        timer: Clock in seconds.
        seed: Seed of the random input.
        isolated: Time in a child process (None: for every runtime but onnxruntime).

    Raises:
        ProviderError: the provider is not usable.
        MeasurementError: the model's input does not match ``(batch_size, *input_shape)`` or a run fails.
    """
    from hwnas.shapes import check_batch

    check_batch(batch_size, input_shape)  # the inputs made below fit memory
    engine = get_runtime(runtime)
    if isolated is None:
        isolated = runtime != DEFAULT_RUNTIME and timer is time.perf_counter
    if isolated:
        from hwnas.profiling.isolation import measure_isolated

        engine.require(provider)  # a missing runtime is this process's one line
        return measure_isolated(as_files(model_bytes), input_shape, runtime=runtime, batch_size=batch_size,
                                provider=provider, threads=threads, warmup=warmup, min_runs=min_runs,
                                max_runs=max_runs, max_seconds=max_seconds, target_rel_ci=target_rel_ci, seed=seed)
    t0 = time.perf_counter()
    try:
        session = engine.load(as_files(model_bytes), provider=provider, threads=threads)
    except RuntimeFailure as exc:
        raise MeasurementError(str(exc)) from exc
    session_s = time.perf_counter() - t0
    expected = (int(batch_size), *[int(d) for d in input_shape])
    declared = session.input_shape
    fixed_mismatch = any(isinstance(d, int) and d != e for d, e in zip(declared, expected, strict=False))
    if len(declared) != len(expected) or fixed_mismatch:
        raise MeasurementError(f"the model's input shape {list(declared)} does not match batch {batch_size} "
                               f"x {'x'.join(map(str, input_shape))}")
    rng = np.random.default_rng(seed)
    dtype = session.input_dtype
    values = rng.integers(0, 256, expected) if dtype == np.uint8 else rng.standard_normal(expected)
    feed = np.ascontiguousarray(values.astype(dtype))

    def run() -> None:
        session.run(feed)

    try:
        run()  # fail early and clearly rather than inside the timing loop
    except Exception as exc:
        raise MeasurementError(f"{runtime} failed to run the model: {type(exc).__name__}: {exc}"
                               .splitlines()[0]) from exc
    stats = time_callable(run, warmup=warmup, min_runs=min_runs, max_runs=max_runs, max_seconds=max_seconds,
                          target_rel_ci=target_rel_ci, timer=timer)
    return LatencyStats(**{**asdict(stats), "session_s": float(session_s)})


@contextlib.contextmanager
def torch_single_thread() -> Iterator[None]:
    """Runs PyTorch single-threaded for a while (export, size counting of tiny models).

    Threads do not speed these up, they slow them down on a busy machine, and a PyTorch worker pool still
    spinning after an export would steal a core from the timed onnxruntime runs that follow.
    """
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


class _HalfPrecision(torch.nn.Module):
    """Runs a half-precision model behind float32 input and output (the usual fp16 deployment)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


def export_for_measurement(space: SearchSpace, arch: Arch, input_shape: Sequence[int], num_classes: int, *,
                           batch_size: int = 1, precision: str = "fp32", seed: int = 0,
                           runtime: str = DEFAULT_RUNTIME) -> bytes | dict[str, bytes]:
    """Builds ``arch`` and exports it with the project's exporter (checked with ``onnx.checker``): the ONNX
    bytes, or for a runtime that does not read ONNX its own files (:data:`hwnas.runtimes.ModelFiles`).

    No PyTorch-vs-runtime parity check here: it does not change the latency and would double the cost of
    profiling; every exported file that ships is checked at export.
    """
    from hwnas.onnx_export import arch_metadata, check_onnx, seeded_model, to_onnx_bytes

    if precision not in PRECISIONS:
        raise MeasurementError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
    with torch_single_thread():
        model = seeded_model(space, arch, input_shape, num_classes, seed=seed)
        if precision == "fp16":
            model = _HalfPrecision(model)
        metadata = {**arch_metadata(space, arch, input_shape, num_classes), "precision": precision}
        model_bytes = to_onnx_bytes(model, input_shape, batch_size=batch_size, metadata=metadata)
        check_onnx(model_bytes)
        files = get_runtime(runtime).measured_files(model, model_bytes, input_shape=input_shape,
                                                    batch_size=batch_size)
    return files[".onnx"] if list(files) == [".onnx"] else files


def make_record(*, space: str, arch: Arch, input_shape: Sequence[int], num_classes: int,
                stats: Mapping[str, Any], space_options: Mapping[str, Any] | None = None,
                source: str = "measured") -> dict[str, Any]:
    """One profile record: what was measured and its statistics (the format of ``measurements.jsonl``)."""
    return {"space": space, "space_options": dict(sorted((space_options or {}).items())),
            "input_shape": [int(d) for d in input_shape], "num_classes": int(num_classes),
            "arch": arch.string, "arch_id": arch.id, **dict(stats), "source": source,
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@dataclass
class ArchTiming:
    """Where the time of profiling one architecture went (for progress display and benchmarks)."""

    export_s: float = 0.0
    session_s: float = 0.0
    warmup_s: float = 0.0
    timed_s: float = 0.0


def profile_arch(space: SearchSpace, arch: Arch | str, input_shape: Sequence[int], num_classes: int, *,
                 conditions: Conditions = DEFAULT_CONDITIONS,
                 space_options: Mapping[str, Any] | None = None,
                 protocol: Protocol = DEFAULT_PROTOCOL, seed: int = 0,
                 timer: Callable[[], float] = time.perf_counter,
                 timing: ArchTiming | None = None) -> dict[str, Any]:
    """Exports and measures one architecture; returns its profile record.

    Args:
        space: The search space.
        arch: An architecture of it, or its canonical string.
        input_shape: ``(C, H, W)`` of one input.
        num_classes: Number of output logits.
        conditions: Runtime, provider, threads, batch size and precision.
        space_options: The space's constructor options (recorded with the measurement).
        protocol: Warm-up and stopping rule.
        seed: Seed of the weights and the input.
        timer: Clock of the timed runs.
        timing: When given, filled with the time spent on export, session, warm-up and timed runs.
    """
    if isinstance(arch, str):
        arch = space.parse(arch)
    t0 = time.perf_counter()
    model_bytes = export_for_measurement(space, arch, input_shape, num_classes,
                                         batch_size=conditions.batch_size, precision=conditions.precision,
                                         seed=seed, runtime=conditions.runtime)
    export_s = time.perf_counter() - t0
    stats = measure_latency(model_bytes, input_shape, batch_size=conditions.batch_size,
                            provider=conditions.provider, threads=conditions.threads, runtime=conditions.runtime,
                            warmup=protocol.warmup,
                            min_runs=protocol.min_runs, max_runs=protocol.max_runs,
                            max_seconds=protocol.max_seconds, target_rel_ci=protocol.target_rel_ci,
                            timer=timer, seed=seed)
    if timing is not None:
        timing.export_s, timing.session_s = export_s, stats.session_s
        timing.warmup_s, timing.timed_s = stats.warmup_s, stats.timed_s
    return make_record(space=space.name, arch=arch, input_shape=input_shape, num_classes=num_classes,
                       stats=stats.to_dict(), space_options=space_options)
