"""What a runtime is to hwnas: the engine a shipped model runs in, and therefore the one its latency is measured in.

A :class:`Runtime` turns a PyTorch module (and its ONNX export) into the files it ships, opens a
:class:`Session` on such files under a provider and a thread count, and says whether it is installed here. A
model travels as :data:`ModelFiles`: file suffix -> bytes (``{".onnx": ...}``; OpenVINO's IR is
``{".xml": ..., ".bin": ...}``), so that a multi-file format pickles to a Ray node and is written as one group.

A new runtime is one module with one :class:`Runtime` subclass, registered in :data:`RUNTIMES`, and an extra in
``pyproject.toml`` when it needs a package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from hwnas.errors import HwnasError, ProfileError
from hwnas.registry import Registry

#: A model in one runtime's format: file suffix -> bytes.
ModelFiles = Mapping[str, bytes]


class ProviderError(ProfileError):
    """The runtime or its execution provider is unknown, not installed, or not usable here."""


class RuntimeFailure(HwnasError):
    """A runtime could not convert or run a model."""


class Session(ABC):
    """A model loaded in a runtime, ready to run (one input, one output: the logits)."""

    #: The declared input dimensions (an int, or a name/None where dynamic).
    input_shape: list
    #: The input's numpy type.
    input_dtype: type

    @abstractmethod
    def run(self, inputs: np.ndarray) -> np.ndarray:
        """The model's output for one batch of ``inputs``."""

    @staticmethod
    def check_one_input(count: int) -> None:
        """Refuses a model with other than one input (:class:`RuntimeFailure`): hwnas feeds exactly one."""
        if count != 1:
            raise RuntimeFailure(f"the model has {count} inputs; hwnas runs models with exactly one")


class Runtime(ABC):
    """An inference runtime (see the module).

    Class attributes:
        name: The ``--runtime`` value.
        package: The Python distribution that provides it.
        extra: The hwnas extra that installs it (None: always installed).
        providers: The ``--provider`` values it runs on.
        ship_suffixes: The files :meth:`ship` writes (beside the ONNX file, which every export writes).
        precisions: The precisions it measures.
    """

    name: ClassVar[str]
    package: ClassVar[str]
    extra: ClassVar[str | None] = None
    providers: ClassVar[tuple[str, ...]] = ("cpu",)
    ship_suffixes: ClassVar[tuple[str, ...]] = (".onnx",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16")
    #: Whether the int8 (QDQ) ONNX file of ``--quantize int8`` runs in it.
    runs_int8_onnx: ClassVar[bool] = False
    #: Whether its files can take any batch size (``--dynamic-batch``).
    dynamic_batch: ClassVar[bool] = True

    @abstractmethod
    def version(self) -> str | None:
        """The installed version, or None when it is not installed here."""

    def install_line(self) -> str:
        """How to install it."""
        return f"pip install 'hwnas[{self.extra}]'" if self.extra else f"pip install {self.package}"

    def provider_install_line(self, provider: str) -> str:
        """How to get ``provider`` for this runtime."""
        return self.install_line()

    def available_providers(self) -> list[str]:
        """The providers usable here (empty when the runtime is not installed)."""
        return list(self.providers) if self.version() is not None else []

    def require(self, provider: str = "cpu", precision: str = "fp32") -> None:
        """Checks that the runtime is installed and runs ``provider`` at ``precision`` here.

        Raises:
            ProviderError: one line saying what is missing and how to install it.
        """
        if self.version() is None:
            raise ProviderError(f"runtime {self.name} is not installed: {self.install_line()}")
        if provider not in self.providers:
            raise ProviderError(f"runtime {self.name} runs on provider(s) {', '.join(self.providers)}, not "
                                f"{provider!r}")
        if precision not in self.precisions:
            raise ProviderError(f"runtime {self.name} measures precision(s) {', '.join(self.precisions)}, not "
                                f"{precision!r}")

    def converter_missing(self) -> str | None:
        """What converting a model to this runtime's files needs and is not installed here (None: nothing).
        Measuring an architecture converts it; running a copied file does not."""
        return None

    def require_measuring(self, provider: str = "cpu", precision: str = "fp32") -> None:
        """Checks that architectures can be measured here: :meth:`require`, and a model can be converted
        (measuring an architecture converts it; running a copied file does not)."""
        self.require(provider, precision)
        self.require_converter()

    def require_converter(self) -> None:
        """Checks that models can be converted here (:meth:`converter_missing`); one line if not.

        Raises:
            ProviderError: the converter is missing.
        """
        missing = self.converter_missing()
        if missing:
            raise ProviderError(missing)

    def measured_files(self, module: Any, onnx_bytes: bytes, *, input_shape: Sequence[int],
                       batch_size: int, input_dtype: str = "float32") -> dict[str, bytes]:
        """The files a latency measurement runs: the ONNX model itself, for a runtime that reads ONNX."""
        return {".onnx": onnx_bytes}

    def ship(self, module: Any, onnx_bytes: bytes, *, input_shape: Sequence[int], batch_size: int,
             input_dtype: str = "float32") -> dict[str, bytes]:
        """The files that ship for this runtime (converted from ``module`` or its ONNX export)."""
        return self.measured_files(module, onnx_bytes, input_shape=input_shape, batch_size=batch_size,
                                   input_dtype=input_dtype)

    @abstractmethod
    def load(self, files: ModelFiles, *, provider: str = "cpu", threads: int = 1) -> Session:
        """A session on ``files`` (see :data:`ModelFiles`) under ``provider`` with ``threads`` CPU threads.

        Raises:
            ProviderError: the runtime or provider is not usable here.
            RuntimeFailure: the files cannot be loaded.
        """


RUNTIMES: Registry = Registry("runtime")
DEFAULT_RUNTIME = "onnxruntime"


def as_files(model: bytes | ModelFiles) -> dict[str, bytes]:
    """``model`` as :data:`ModelFiles` (plain bytes are an ONNX model)."""
    return {".onnx": model} if isinstance(model, (bytes, bytearray)) else dict(model)


def get_runtime(name: str) -> Runtime:
    """The registered runtime ``name`` (an instance).

    Raises:
        ProviderError: unknown name (the message lists the known ones).
    """
    if name not in RUNTIMES:
        raise ProviderError(f"unknown runtime {name!r} (known: {', '.join(RUNTIMES.names())})")
    return RUNTIMES.get(name)()


def runtime_for_file(suffix: str) -> str | None:
    """The runtime that ships files ending in ``suffix`` (``.xml`` -> openvino); None for ``.onnx``."""
    for name in RUNTIMES.names():
        suffixes = RUNTIMES.get(name).ship_suffixes
        if suffix in suffixes and suffix != ".onnx":
            return name
    return None
