"""Devices: where latencies are measured (this machine, a Ray node, or a device out of reach), behind one
:class:`Device` protocol; :func:`open_device` picks one. See :mod:`hwnas.devices.base`."""

from hwnas.devices.base import Device, DeviceError, measure_command, profile_name
from hwnas.devices.local import LocalDevice, Location, locate, measure_file
from hwnas.devices.open import open_device
from hwnas.devices.ray import RayNodeDevice
from hwnas.devices.unreachable import UnreachableDevice

__all__ = ["Device", "DeviceError", "LocalDevice", "Location", "RayNodeDevice", "UnreachableDevice", "locate",
           "measure_command", "measure_file", "open_device", "profile_name"]
