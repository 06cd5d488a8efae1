"""A device hwnas cannot reach from here (a phone, a board, another machine): its profile was brought back
from it; nothing is measured, and :meth:`UnreachableDevice.command` is what to run there."""

from __future__ import annotations

from typing import Any, NoReturn

from hwnas.devices.base import DeviceError, measure_command
from hwnas.profiling.measure import Conditions


class UnreachableDevice:
    """A device that cannot measure from here; ``reason`` says why."""

    where = "not reachable from here"
    measurable = False

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def _refuse(self, what: str) -> NoReturn:
        raise DeviceError(f"device {self.name!r} cannot {what} from here: {self.reason}")

    def fingerprint(self, conditions: Conditions) -> dict[str, Any]:
        self._refuse("be fingerprinted")

    def measure_arch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._refuse("measure an architecture")

    def measure_file(self, *args: Any, **kwargs: Any):
        self._refuse("measure a model file")

    def command(self, model_name: str, conditions: Conditions) -> str:
        return measure_command(model_name, conditions)

    def close(self) -> None:
        pass
