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


#: The latencies hwnas accepts from a profile or a table, in ms (1 ns .. about 17 minutes): a value outside is
#: an edited or mis-scaled file (a row in seconds or ns), and is skipped with a warning naming the file and line.
MIN_LATENCY_MS = 1e-6
MAX_LATENCY_MS = 1e6


def latency_in_range(value: float) -> bool:
    """Whether ``value`` (a finite number) is a latency hwnas accepts (:data:`MIN_LATENCY_MS` ..
    :data:`MAX_LATENCY_MS`)."""
    return MIN_LATENCY_MS <= value <= MAX_LATENCY_MS
