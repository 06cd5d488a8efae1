"""Runtimes: the engines a model is measured and shipped in (``--runtime``).

- ``onnxruntime`` (default; providers ``cpu``, ``cuda``, ``tensorrt``): :mod:`hwnas.runtimes.onnxruntime`;
- ``openvino`` (``pip install 'hwnas[openvino]'``): :mod:`hwnas.runtimes.openvino`;
- ``litert`` (TensorFlow Lite, the mobile runtime; ``pip install 'hwnas[mobile]'``): :mod:`hwnas.runtimes.litert`.

:func:`get_runtime` gives one by name; :data:`RUNTIMES` lists them (a new runtime registers there).
"""

from hwnas.runtimes import onnxruntime as _onnxruntime  # noqa: F401  (registers)
from hwnas.runtimes import litert as _litert  # noqa: F401
from hwnas.runtimes import openvino as _openvino  # noqa: F401
from hwnas.runtimes.base import (DEFAULT_RUNTIME, RUNTIMES, ModelFiles, ProviderError, Runtime, RuntimeFailure,
                                 Session, as_files, get_runtime, runtime_for_file)

__all__ = ["DEFAULT_RUNTIME", "RUNTIMES", "ModelFiles", "ProviderError", "Runtime", "RuntimeFailure", "Session",
           "as_files", "get_runtime", "runtime_for_file"]
