""":func:`open_device`: the one place that decides which kind of :class:`~hwnas.devices.base.Device` a run's
device is (``hwnas profile`` and ``hwnas evaluate`` run on the device itself: they measure on
:class:`~hwnas.devices.local.LocalDevice`, unless ``profile --ray`` reaches it)."""

from __future__ import annotations

from hwnas.devices.base import Device
from hwnas.devices.local import LocalDevice, locate
from hwnas.devices.ray import RayNodeDevice, node_advertising
from hwnas.devices.unreachable import UnreachableDevice
from hwnas.profiling.measure import Conditions


def open_device(name: str, *, profiles_dir: str, conditions: Conditions, executor=None,
                ray_address: str | None = None) -> Device:
    """The device ``name``, measuring under ``conditions``.

    - ``ray_address`` (``--ray`` of profile and export): the node of that cluster advertising
      ``device:<name>``, which must exist (:meth:`RayNodeDevice.connect`); closing the device disconnects.
    - ``executor`` (the search's): its cluster's node for ``name`` when there is one.
    - Otherwise this machine when the device is this machine (:func:`~hwnas.devices.local.locate`), else an
      :class:`UnreachableDevice` saying why.

    Raises:
        ClusterError: ``ray_address`` cannot be reached or has no node for ``name``.
    """
    if ray_address:
        return RayNodeDevice.connect(ray_address, name)
    if executor is not None and node_advertising(executor, name):
        return RayNodeDevice(executor, name)
    location = locate(name, str(profiles_dir), conditions)
    return LocalDevice(name) if location.local else UnreachableDevice(name, location.reason)
