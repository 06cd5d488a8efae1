"""onnxruntime, hwnas's default runtime, and its execution providers: ``cpu``/``cuda``/``tensorrt``.

A profile is labelled with the provider it was measured on, so a session that silently fell back to the CPU
would mislabel every number in it. :func:`create_session` therefore checks twice: before creating the session
(is the provider compiled into this onnxruntime?) and after (did the session really get it, or did
onnxruntime drop it, e.g. for missing CUDA libraries?). Either failure is a :class:`ProviderError`.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from hwnas.runtimes.base import RUNTIMES, ModelFiles, ProviderError, Runtime, RuntimeFailure, Session

logger = logging.getLogger(__name__)

#: User-facing provider name -> onnxruntime providers, in priority order. The requested one comes first;
#: onnxruntime places nodes the accelerator cannot run on the ones after it (it always keeps the CPU).
PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}

_HOW_TO_GET = {
    "cuda": "install the onnxruntime-gpu package instead of onnxruntime "
            "(pip uninstall onnxruntime && pip install onnxruntime-gpu) on a machine with an NVIDIA GPU "
            "and CUDA",
    "tensorrt": "install the onnxruntime-gpu package instead of onnxruntime "
                "(pip uninstall onnxruntime && pip install onnxruntime-gpu) and NVIDIA TensorRT on a machine "
                "with an NVIDIA GPU",
}

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
                "tensor(uint8)": np.uint8}


def provider_names() -> list[str]:
    """The provider names ``--provider`` accepts (those of every runtime)."""
    return list(PROVIDERS)


def provider_list(provider: str) -> list[str]:
    """The onnxruntime providers for ``provider`` (``cpu``, ``cuda`` or ``tensorrt``).

    Raises:
        ProviderError: ``provider`` is not one of the known names.
    """
    try:
        return list(PROVIDERS[provider])
    except KeyError:
        raise ProviderError(f"unknown provider {provider!r} (known: {', '.join(PROVIDERS)})") from None


def _available() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def check_provider(provider: str, *, available: Sequence[str] | None = None) -> str:
    """Checks that the installed onnxruntime has ``provider``; returns its onnxruntime name.

    Args:
        provider: ``cpu``, ``cuda`` or ``tensorrt``.
        available: The available onnxruntime providers; asked from onnxruntime when None.

    Raises:
        ProviderError: unknown name, or the provider is not compiled into this onnxruntime (the message says
            how to get it).
    """
    import onnxruntime as ort

    wanted = provider_list(provider)[0]
    available = list(_available() if available is None else available)
    if wanted not in available:
        raise ProviderError(
            f"provider {provider} ({wanted}) is not available in the installed onnxruntime "
            f"{ort.__version__} (it has: {', '.join(available) or 'none'}); "
            f"{_HOW_TO_GET.get(provider, 'install an onnxruntime build that has it')}")
    return wanted


def create_session(model_bytes: bytes, *, provider: str = "cpu", threads: int = 1):
    """An onnxruntime session for latency measurement, guaranteed to run on ``provider``.

    Fixed thread counts (``threads`` intra-op, one inter-op, sequential execution) and all graph
    optimisations, as a deployment would use them.

    Args:
        model_bytes: The serialised ONNX model.
        provider: ``cpu``, ``cuda`` or ``tensorrt``.
        threads: Intra-op threads (the CPU threads that run an operator).

    Raises:
        ProviderError: the provider is unknown, not installed, or was dropped by onnxruntime at session
            creation (never a silent fallback to the CPU).
    """
    import onnxruntime as ort

    if int(threads) < 1:
        raise ProviderError(f"threads must be at least 1, got {threads}")
    wanted = check_provider(provider)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(model_bytes, sess_options=options, providers=provider_list(provider))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ProviderError(f"onnxruntime could not create a {provider} session: "
                            f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
    got = list(session.get_providers())
    if wanted not in got:
        raise ProviderError(
            f"onnxruntime created the session without {wanted} (it uses {', '.join(got)}): the {provider} "
            f"provider failed to load (missing CUDA/cuDNN/TensorRT libraries?); refusing to measure on "
            f"another provider and mislabel the profile")
    logger.debug("session providers: %s", got)
    return session


class OrtSession(Session):
    """An onnxruntime session behind the :class:`Session` interface."""

    def __init__(self, session) -> None:
        self.session = session
        inputs = session.get_inputs()
        self.check_one_input(len(inputs))
        self.input_name = inputs[0].name
        self.input_shape = list(inputs[0].shape)
        self.input_dtype = _NUMPY_TYPES.get(inputs[0].type, np.float32)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: inputs})[0]


@RUNTIMES.register("onnxruntime")
class OnnxRuntime(Runtime):
    """onnxruntime (always installed): the ONNX file itself, on the CPU, CUDA or TensorRT provider."""

    name = "onnxruntime"
    package = "onnxruntime"
    providers = tuple(PROVIDERS)
    runs_int8_onnx = True

    def version(self) -> str | None:
        import onnxruntime as ort

        return str(ort.__version__)

    def available_providers(self) -> list[str]:
        found = set(_available())
        return [name for name, chain in PROVIDERS.items() if chain[0] in found]

    def provider_install_line(self, provider: str) -> str:
        return _HOW_TO_GET.get(provider, self.install_line())

    def require(self, provider: str = "cpu", precision: str = "fp32") -> None:
        super().require(provider, precision)
        check_provider(provider)

    def load(self, files: ModelFiles, *, provider: str = "cpu", threads: int = 1) -> Session:
        if ".onnx" not in files:
            raise RuntimeFailure(f"onnxruntime runs an ONNX file, not {', '.join(files)}")
        return OrtSession(create_session(files[".onnx"], provider=provider, threads=threads))
