"""Errors of the profiler: each message is one line meant for the user."""

from __future__ import annotations

from hwnas.errors import HwnasError


class ProfileError(HwnasError):
    """A device profile is missing, unreadable, corrupt, or measured under other conditions."""


class ProviderError(ProfileError):
    """The requested onnxruntime execution provider is unknown or not usable here."""


class MeasurementError(ProfileError):
    """A model could not be run for timing (bad input shape, failed session, ...)."""
