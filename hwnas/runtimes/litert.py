"""LiteRT (TensorFlow Lite; ``pip install 'hwnas[mobile]'``): the runtime of Android phones and Linux boards,
with its XNNPACK CPU delegate.

A model is converted from PyTorch by ``litert-torch`` (``torch.export`` underneath; a couple of seconds per
model, against 0.1 s for an ONNX export) into one ``.tflite`` file, and run by ``ai-edge-litert``'s
interpreter with ``num_threads`` = the run's threads (XNNPACK is its default CPU delegate). On a device only
``ai-edge-litert`` is needed to measure a copied ``.tflite`` (``hwnas evaluate model.tflite --latency-only``);
converting (profiling, export) needs ``litert-torch`` too.

Chosen over ExecuTorch (XNNPACK), measured side by side on this project's models (issue 31's note): both
install beside torch 2.13 and convert 30/30 architectures with parity below 1e-5, at the same latency on
mobilenet; LiteRT sets its threads through a public per-interpreter argument (ExecuTorch only through a
private call that crashes once a program is loaded), its runtime installs without torch on a device, and it
runs nb201's average pooling in XNNPACK (ExecuTorch falls back to portable kernels, 1.4x slower). Its
converter is heavier (+1 GB with jax, against +0.3 GB).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator, Sequence

import numpy as np

from hwnas.runtimes.base import RUNTIMES, ModelFiles, ProviderError, Runtime, RuntimeFailure, Session

#: Quiets the converter's C++ logging (absl/TensorFlow/oneDNN), set before its first import.
_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}
_LOGGERS = ("absl", "jax", "torchao", "torch", "litert_torch")


@contextlib.contextmanager
def _silenced_stderr() -> Iterator[None]:
    """The process's own stderr (file descriptor 2) sent to /dev/null meanwhile: the converter's C++ libraries
    log there directly, past Python. Its failures still surface as exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


class LiteRtSession(Session):
    def __init__(self, interpreter) -> None:
        self.interpreter = interpreter
        inputs = interpreter.get_input_details()
        self.check_one_input(len(inputs))
        self.input_index = inputs[0]["index"]
        self.input_shape = [int(d) for d in inputs[0]["shape"]]
        self.input_dtype = np.dtype(inputs[0]["dtype"]).type
        self.output_index = interpreter.get_output_details()[0]["index"]

    def run(self, inputs: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input_index, inputs)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)


@RUNTIMES.register("litert")
class LiteRt(Runtime):
    """LiteRT's interpreter with XNNPACK, on the CPU."""

    name = "litert"
    package = "ai-edge-litert"
    extra = "mobile"
    ship_suffixes = (".tflite",)
    precisions = ("fp32",)
    dynamic_batch = False

    def version(self) -> str | None:
        return _version("ai-edge-litert")

    def converter_missing(self) -> str | None:
        if _version("litert-torch") is None:
            return ("runtime litert converts models with litert-torch, which is not installed: pip install "
                    "'hwnas[mobile]' (a device that only runs copied .tflite files needs ai-edge-litert alone)")
        return None

    def load(self, files: ModelFiles, *, provider: str = "cpu", threads: int = 1) -> Session:
        self.require(provider)
        if ".tflite" not in files:
            raise RuntimeFailure(f"LiteRT runs a .tflite file, not {', '.join(files)}")
        from ai_edge_litert.interpreter import Interpreter

        try:
            with _silenced_stderr():  # "Created TensorFlow Lite XNNPACK delegate", at every interpreter
                interpreter = Interpreter(model_content=bytes(files[".tflite"]), num_threads=int(threads))
                interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError with long messages
            raise RuntimeFailure(f"LiteRT cannot load the model: {exc}".splitlines()[0]) from exc
        return LiteRtSession(interpreter)

    def measured_files(self, module: Any, onnx_bytes: bytes, *, input_shape: Sequence[int], batch_size: int,
                       input_dtype: str = "float32") -> dict[str, bytes]:
        return {".tflite": convert(module, input_shape, batch_size=batch_size, input_dtype=input_dtype)}


def convert(module, input_shape: Sequence[int], *, batch_size: int = 1, input_dtype: str = "float32") -> bytes:
    """``module`` (eval mode) as a ``.tflite`` file for inputs of ``(batch_size, *input_shape)``.

    Raises:
        ProviderError: ``litert-torch`` is not installed.
        RuntimeFailure: the conversion failed.
    """
    import torch

    from hwnas.onnx_export import quiet

    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        with _silenced_stderr(), quiet(*_LOGGERS, capture_stdout=True):
            import litert_torch
    except ImportError:
        raise ProviderError("runtime litert converts models with litert-torch, which is not installed: "
                            "pip install 'hwnas[mobile]'") from None
    example = torch.zeros(int(batch_size), *[int(d) for d in input_shape], dtype=getattr(torch, input_dtype))
    try:
        with _silenced_stderr(), quiet(*_LOGGERS, capture_stdout=True), torch.no_grad():
            return bytes(litert_torch.convert(module.eval(), (example,)).model_content())
    except Exception as exc:  # the converter raises many types
        raise RuntimeFailure(f"LiteRT conversion failed: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
