"""Latency of a runtime other than onnxruntime, measured in a process of its own.

Runtimes share a process badly: merely importing onnxruntime slows OpenVINO's inference in the same process by
11% (271 -> 300 us on a mobilenet model of the default task, this 2-core machine), and a mix of onnxruntime and
LiteRT sessions before it by up to 37% (371 us), while PyTorch and the LiteRT converter leave it alone. hwnas
imports onnxruntime everywhere (fingerprints, parity checks, the ONNX file's test accuracy), and an application
shipping an OpenVINO or LiteRT model would not; so such a model is timed in one long-lived child process per
runtime (``python -m hwnas.profiling.isolation_child``: a fresh interpreter that never imports onnxruntime,
started on first use in 1-3 s). Requests and results travel pickled over its stdin/stdout; it ignores Ctrl-C (the parent
handles it) and ends when its stdin closes, which the parent's exit, or death, does.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from hwnas.errors import HwnasError
from hwnas.profiling.errors import MeasurementError

logger = logging.getLogger(__name__)

_CHILDREN: dict[str, subprocess.Popen] = {}


def _start() -> subprocess.Popen:
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.Popen([sys.executable, "-m", "hwnas.profiling.isolation_child"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": path})


def measure_isolated(files: Mapping[str, bytes], input_shape: Sequence[int], *, runtime: str, **kwargs: Any):
    """:func:`hwnas.profiling.measure.measure_latency` of ``files`` in ``runtime``'s own child process.

    Raises:
        MeasurementError: the child process died; or what the measurement raised there (an hwnas error as
            itself).
    """
    child = _CHILDREN.get(runtime)
    if child is None or child.poll() is not None:
        child = _CHILDREN[runtime] = _start()
    try:
        pickle.dump((dict(files), tuple(input_shape), {**kwargs, "runtime": runtime}), child.stdin)
        child.stdin.flush()
        status, value = pickle.load(child.stdout)
    except (EOFError, OSError, pickle.UnpicklingError):
        _CHILDREN.pop(runtime, None)
        raise MeasurementError(f"the process measuring in {runtime} died (out of memory, or killed)") from None
    except BaseException:  # Ctrl-C mid-exchange: its reply would answer the next request; start afresh
        _CHILDREN.pop(runtime, None)
        child.kill()
        child.wait()
        raise
    if status == "ok":
        return value
    if isinstance(value, HwnasError):
        raise value
    raise MeasurementError(f"measuring in {runtime} failed: {value}")


def shutdown() -> None:
    """Ends the measuring processes (also done at exit)."""
    for child in _CHILDREN.values():
        try:
            child.stdin.close()
            child.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            child.kill()
    _CHILDREN.clear()


atexit.register(shutdown)
