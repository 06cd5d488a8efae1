"""Errors of the profiler: each message is one line meant for the user."""

from __future__ import annotations

from hwnas.errors import HwnasError
from hwnas.runtimes.base import ProviderError as _RuntimeProviderError


class ProfileError(HwnasError):
    """A device profile is missing, unreadable, corrupt, or measured under other conditions."""


ProviderError = _RuntimeProviderError  # the runtime or its provider is unknown or not usable here


class MeasurementError(ProfileError):
    """A model could not be run for timing (bad input shape, failed session, ...)."""
