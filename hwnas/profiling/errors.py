"""Errors of the profiler: each message is one line meant for the user.

:class:`ProfileError` is defined with the foundations (:mod:`hwnas.errors`) and :class:`ProviderError` with the
runtimes (:mod:`hwnas.runtimes.base`), which raise it; both are named here as before.
"""

from __future__ import annotations

from hwnas.errors import ProfileError
from hwnas.runtimes.base import ProviderError

__all__ = ["MeasurementError", "ProfileError", "ProviderError"]


class MeasurementError(ProfileError):
    """A model could not be run for timing (bad input shape, failed session, ...)."""
