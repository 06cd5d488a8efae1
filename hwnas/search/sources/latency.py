"""Sources of truth for the search loop: real latency (device profile or table) and real accuracy.

A latency source *measures* a candidate when its device can (this machine or its Ray node; the measurement
is added to the device's profile), looks it up when its profile or table holds it, and otherwise — for a device
out of reach, whose profile was brought back from it — falls back to the latency predictor fit on that profile,
flagging the value as predicted so the result never passes it off as a measurement.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from hwnas.arch import Arch
from hwnas.devices import Device, LocalDevice
from hwnas.profiling import Conditions, ProfileStore
from hwnas.runtimes import DEFAULT_RUNTIME
from hwnas.spaces.base import SearchSpace

logger = logging.getLogger(__name__)

#: How long a search waits for another process measuring into the same device profile.
PROFILE_LOCK_WAIT_S = 1800.0


class ProfileLatency:
    """Latency from a device profile.

    Args:
        store: The device profile.
        space: The search space.
        input_shape: ``(C, H, W)``.
        num_classes: Number of classes.
        space_options: The space's constructor options.
        conditions: Measurement conditions (those of the profile).
        device: Where candidates are measured (:mod:`hwnas.devices`; this machine when None).
        measurable: Whether candidates can be measured into this profile.
        fallback: Predicts latency for candidates that cannot be measured (a fitted latency predictor's
            ``predict``), or None.
        seed: Seed of measurement weights and inputs.
        fingerprint: The measuring device's fingerprint (:meth:`hwnas.devices.Device.fingerprint`; asked when
            the first measurement is stored, when None).
    """

    def __init__(self, store: ProfileStore, space: SearchSpace, *, input_shape: Sequence[int], num_classes: int,
                 space_options: Mapping[str, Any] | None = None, conditions: Conditions = Conditions(),
                 device: Device | None = None, measurable: bool = True, fallback=None, seed: int = 0,
                 fingerprint: Mapping[str, Any] | None = None) -> None:
        self.store = store
        self.space = space
        self.input_shape = list(input_shape)
        self.num_classes = num_classes
        self.space_options = dict(space_options or {})
        self.conditions = conditions
        self.measurable = measurable
        self.fallback = fallback
        self.seed = seed
        if device is None:  # this machine, under the device name the profile's name was made from
            suffix = f".{conditions.runtime}"
            name = store.device
            if conditions.runtime != DEFAULT_RUNTIME and name.endswith(suffix):
                name = name[: -len(suffix)]
            device = LocalDevice(name)
        self.device: Device = device
        self.fingerprint = fingerprint

    def records(self) -> list[dict]:
        if not self.store.exists:
            return []
        return self.store.records(self.space.name, self.input_shape, self.space_options)

    def known(self) -> list[tuple[str, float]]:
        return [(r["arch"], float(r["median_ms"])) for r in self.records()]

    def measure(self, arch: Arch) -> dict[str, Any]:
        """``{"latency_ms": ..., "measured": bool}`` for ``arch``."""
        for record in self.records():
            if record["arch"] == arch.string:
                return {"latency_ms": float(record["median_ms"]), "measured": True}
        if self.measurable:
            # One writer per profile: another process measuring into it (``hwnas profile``, another search) is
            # waited for, and what it measured meanwhile is read rather than measured twice.
            with self.store.lock(timeout=PROFILE_LOCK_WAIT_S, on_wait=logger.warning):
                self.store.refresh()
                for record in self.records():
                    if record["arch"] == arch.string:
                        return {"latency_ms": float(record["median_ms"]), "measured": True}
                record = self.device.measure_arch(self.space, arch, self.input_shape, self.num_classes,
                                                  conditions=self.conditions, space_options=self.space_options,
                                                  seed=self.seed)
                if self.fingerprint is None:
                    self.fingerprint = self.device.fingerprint(self.conditions)
                self.store.ensure(self.fingerprint)
                self.store.add(record)
            return {"latency_ms": float(record["median_ms"]), "measured": True}
        if self.fallback is None:
            from hwnas.search.state import SearchError

            raise SearchError(f"{arch.string} is not in profile {self.store.device!r} and the device is not this "
                              f"machine, so it cannot be measured")
        return {"latency_ms": float(self.fallback([arch.string])[0]), "measured": False}
