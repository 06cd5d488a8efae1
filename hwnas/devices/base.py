"""The Device seam: where a latency is measured, behind one protocol.

Search, profile, export and evaluate ask a :class:`Device` (from :func:`hwnas.devices.open_device`) to measure;
they never ask *where* it is. Three kinds exist:

- :class:`~hwnas.devices.local.LocalDevice`: this machine;
- :class:`~hwnas.devices.ray.RayNodeDevice`: a node of a Ray cluster that advertises ``device:<name>``;
- :class:`~hwnas.devices.unreachable.UnreachableDevice`: a device hwnas cannot reach (a phone, a board):
  its profile is read, nothing is measured, and :meth:`Device.command` is what to run there.

A new kind of device is one module with one class that satisfies :class:`Device`, and a branch in
:func:`~hwnas.devices.open.open_device`.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from hwnas.errors import HwnasError
from hwnas.profiling.measure import DEFAULT_PROTOCOL, Conditions, LatencyStats, Protocol as TimingProtocol
from hwnas.runtimes import DEFAULT_RUNTIME, ModelFiles


class DeviceError(HwnasError):
    """A device cannot do what was asked (it is not reachable from here)."""


@runtime_checkable
class Device(Protocol):
    """Where latencies are measured.

    Attributes:
        name: The device (its profile's name without the runtime: ``host``, ``pi4``).
        where: Where it measures, for messages: ``this machine``, ``its Ray node``, ``not reachable``.
        measurable: Whether it can measure now.
        reason: Why not (empty when it can).
    """

    name: str
    where: str
    measurable: bool
    reason: str

    def fingerprint(self, conditions: Conditions) -> dict[str, Any]:
        """The measuring machine's fingerprint under ``conditions`` (its runtime and provider checked there).

        Raises:
            DeviceError: the device is not reachable.
            ProviderError: the runtime or provider is not usable there.
        """

    def measure_arch(self, space, arch, input_shape: Sequence[int], num_classes: int, *, conditions: Conditions,
                     space_options: Mapping[str, Any] | None = None, protocol: TimingProtocol = DEFAULT_PROTOCOL,
                     seed: int = 0) -> dict[str, Any]:
        """Exports and measures one architecture there: its profile record
        (:func:`hwnas.profiling.measure.profile_arch`)."""

    def measure_file(self, model: bytes | ModelFiles, input_shape: Sequence[int], conditions: Conditions,
                     **protocol: Any) -> LatencyStats:
        """The latency of an exported model file there, under ``conditions`` (``protocol`` overrides the
        measurement protocol; tests use a short one)."""

    def command(self, model_name: str, conditions: Conditions) -> str:
        """The command that measures a copied model file on the device itself."""

    def close(self) -> None:
        """Releases what opening it took (a Ray connection)."""


def profile_name(device: str, runtime: str = DEFAULT_RUNTIME) -> str:
    """The profile of ``device`` measured in ``runtime``: ``host`` (onnxruntime), ``host.openvino``.

    Latencies of another runtime are another profile beside the device's, so that one device can be searched
    in several runtimes without mixing their measurements.
    """
    return device if runtime == DEFAULT_RUNTIME else f"{device}.{runtime}"


def measure_command(model_name: str, conditions: Conditions) -> str:
    """``hwnas evaluate FILE --latency-only ...``: measures a copied file under the run's conditions."""
    import shlex

    runtime = "" if conditions.runtime == DEFAULT_RUNTIME else f" --runtime {conditions.runtime}"
    return (f"hwnas evaluate {shlex.quote(model_name)} --latency-only{runtime} --provider {conditions.provider} "
            f"--threads {conditions.threads} --batch-size {conditions.batch_size}")
