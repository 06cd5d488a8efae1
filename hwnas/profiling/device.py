"""Is a device (a profile) this machine? And measuring a model file here with the profiler's protocol.

A budget refers to one device (a profile). The exported file can only be re-measured here if *here* is that
device, decided from the profile's fingerprint (:func:`locate_device`):

- a profile imported from a published table is never this machine;
- a measured profile is this machine when its CPU model and architecture equal this machine's (and, for a
  GPU provider, its GPU) and the provider is installed here. Two machines with the same CPU model count as
  the same device: their latencies are what the fingerprint vouches for;
- without a profile, only the device named ``host`` is taken to be this machine.

Elsewhere, :func:`hwnas.deploy.device.remote_command` gives the command that measures a copied file there.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass

from hwnas.errors import HwnasError
from hwnas.profiling.measure import Conditions, LatencyStats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceCheck:
    """Whether the run's device is this machine.

    Attributes:
        local: True when the exported model can be re-measured here.
        reason: Why not (empty when local).
        profile_found: Whether the device's profile was found.
    """

    local: bool
    reason: str = ""
    profile_found: bool = False


def locate_device(device: str, profiles_dir: str, conditions: Conditions) -> DeviceCheck:
    """Decides whether ``device`` (a profile under ``profiles_dir``) is this machine (see the module)."""
    from hwnas.profiling.fingerprint import cpu_model, gpu_name
    from hwnas.profiling.providers import check_provider
    from hwnas.profiling.store import ProfileStore

    try:
        fingerprint = ProfileStore(profiles_dir, device).fingerprint
    except HwnasError as exc:  # a bad name or a corrupt device.json: treat as unknown, say why
        logger.warning("cannot read the profile of %r: %s", device, exc)
        fingerprint = None
    if fingerprint is None:
        if device != "host":
            return DeviceCheck(False, f"no profile {device!r} under {profiles_dir} says what machine it is")
        return _provider_check(conditions.provider, check_provider, profile_found=False)
    if fingerprint.get("source") == "table":
        return DeviceCheck(False, "its latencies come from a published table", profile_found=True)
    here = {"cpu_model": cpu_model(), "machine": platform.machine()}
    if conditions.provider != "cpu":
        here["gpu_name"] = gpu_name()
    for key, value in here.items():
        stored = fingerprint.get(key)
        if stored is not None and stored != value:
            what = key.replace("_", " ")
            return DeviceCheck(False, f"its profile was measured on {what} {stored!r}, this machine has "
                                      f"{value!r}", profile_found=True)
    return _provider_check(conditions.provider, check_provider, profile_found=True)


def _provider_check(provider: str, check_provider, *, profile_found: bool) -> DeviceCheck:
    from hwnas.profiling.errors import ProviderError

    try:
        check_provider(provider)
    except ProviderError:
        return DeviceCheck(False, f"the {provider} provider is not installed here",
                           profile_found=profile_found)
    return DeviceCheck(True, profile_found=profile_found)


def measure_file(model_bytes: bytes, input_shape, conditions: Conditions, **protocol) -> LatencyStats:
    """Latency of an exported model under the profiler's protocol and the run's conditions.

    Args:
        model_bytes: The ONNX model as shipped.
        input_shape: ``(C, H, W)``.
        conditions: Provider, threads and batch size of the run (its precision is the model's own).
        protocol: Overrides of :func:`hwnas.profiling.measure_latency`'s protocol (tests use a short one).
    """
    from hwnas.profiling.measure import measure_latency, torch_single_thread

    with torch_single_thread():  # no PyTorch worker pool spinning beside the timed runs
        return measure_latency(model_bytes, input_shape, batch_size=conditions.batch_size,
                               provider=conditions.provider, threads=conditions.threads, **protocol)
