"""This machine as a device; and whether a device (a profile) *is* this machine.

A budget refers to one device (a profile). Whether it is this machine is decided from the profile's
fingerprint (:func:`locate`):

- a profile imported from a published table is never this machine;
- a measured profile is this machine when its CPU model and architecture equal this machine's (and, for a
  GPU provider, its GPU) and the runtime and provider are installed here. Two machines with the same CPU model
  count as the same device: their latencies are what the fingerprint vouches for;
- without a profile, only the device named ``host`` is taken to be this machine.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from hwnas.devices.base import measure_command, profile_name
from hwnas.errors import HwnasError
from hwnas.profiling.measure import DEFAULT_PROTOCOL, Conditions, LatencyStats, Protocol, profile_arch
from hwnas.runtimes import ModelFiles, ProviderError, get_runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Location:
    """Whether a device is this machine.

    Attributes:
        local: True when it can be measured here.
        reason: Why not (empty when local).
        profile_found: Whether the device's profile was found.
    """

    local: bool
    reason: str = ""
    profile_found: bool = False


def locate(device: str, profiles_dir: str, conditions: Conditions) -> Location:
    """Decides whether ``device`` (its profile in ``conditions.runtime`` under ``profiles_dir``) is this machine
    (see the module)."""
    from hwnas.profiling.fingerprint import cpu_model, gpu_name
    from hwnas.profiling.store import ProfileStore

    name = profile_name(device, conditions.runtime)
    fingerprint = None
    for candidate in dict.fromkeys([name, device]):  # the device's onnxruntime profile says what machine it is too
        try:
            fingerprint = ProfileStore(profiles_dir, candidate).fingerprint
        except HwnasError as exc:  # a bad name or a corrupt device.json: treat as unknown, say why
            logger.warning("cannot read the profile of %r: %s", candidate, exc)
        if fingerprint is not None:
            break
    if fingerprint is None:
        if device != "host":
            return Location(False, f"no profile {name!r} under {profiles_dir} says what machine it is")
        return _usable(conditions, profile_found=False)
    if fingerprint.get("source") == "table":
        return Location(False, "its latencies come from a published table", profile_found=True)
    here = {"cpu_model": cpu_model(), "machine": platform.machine()}
    if conditions.provider != "cpu":
        here["gpu_name"] = gpu_name()
    for key, value in here.items():
        stored = fingerprint.get(key)
        if stored is not None and stored != value:
            what = key.replace("_", " ")
            return Location(False, f"its profile was measured on {what} {stored!r}, this machine has {value!r}",
                            profile_found=True)
    return _usable(conditions, profile_found=True)


def _usable(conditions: Conditions, *, profile_found: bool) -> Location:
    try:
        get_runtime(conditions.runtime).require_measuring(conditions.provider, conditions.precision)
    except ProviderError as exc:
        return Location(False, str(exc), profile_found=profile_found)
    return Location(True, profile_found=profile_found)


class LocalDevice:
    """This machine: measures in this process."""

    where = "this machine"
    measurable = True
    reason = ""

    def __init__(self, name: str) -> None:
        self.name = name

    def fingerprint(self, conditions: Conditions) -> dict[str, Any]:
        return checked_fingerprint(profile_name(self.name, conditions.runtime), conditions)

    def measure_arch(self, space, arch, input_shape: Sequence[int], num_classes: int, *, conditions: Conditions,
                     space_options: Mapping[str, Any] | None = None, protocol: Protocol = DEFAULT_PROTOCOL,
                     seed: int = 0) -> dict[str, Any]:
        return profile_arch(space, arch, input_shape, num_classes, conditions=conditions,
                            space_options=space_options, protocol=protocol, seed=seed)

    def measure_file(self, model: bytes | ModelFiles, input_shape: Sequence[int], conditions: Conditions,
                     **protocol: Any) -> LatencyStats:
        return measure_file(model, input_shape, conditions, **protocol)

    def command(self, model_name: str, conditions: Conditions) -> str:
        return measure_command(model_name, conditions)

    def close(self) -> None:
        pass


def checked_fingerprint(profile: str, conditions: Conditions) -> dict[str, Any]:
    """This machine's fingerprint for ``profile`` under ``conditions``, once its runtime and provider are
    known to be usable here (a :class:`ProviderError` otherwise)."""
    from hwnas.profiling.fingerprint import host_fingerprint

    get_runtime(conditions.runtime).require_measuring(conditions.provider, conditions.precision)
    return host_fingerprint(profile, conditions)


def measure_file(model: bytes | ModelFiles, input_shape, conditions: Conditions, **protocol) -> LatencyStats:
    """Latency of an exported model here, under the profiler's protocol and the run's conditions.

    Args:
        model: The model as shipped: ONNX bytes, or the runtime's files.
        input_shape: One input of the graph (``(C, H, W)``).
        conditions: Runtime, provider, threads and batch size of the run (its precision is the model's own).
        protocol: Overrides of :func:`hwnas.profiling.measure_latency`'s protocol (tests use a short one).
    """
    from hwnas.profiling.measure import measure_latency, torch_single_thread

    with torch_single_thread():  # no PyTorch worker pool spinning beside the timed runs
        return measure_latency(model, input_shape, batch_size=conditions.batch_size, provider=conditions.provider,
                               threads=conditions.threads, runtime=conditions.runtime, **protocol)
