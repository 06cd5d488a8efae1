"""Latency profiling: the measurement protocol, execution providers, device profiles, sampling and tables.

The doors in:

- :func:`measure_latency` / :func:`profile_arch` -- measure one model / one architecture (profile, search
  verification and export all use these);
- :class:`ProfileStore` -- a device profile on disk (``profiles/<device>/``);
- :func:`profile_space` / :func:`import_table` -- fill a profile by measuring or from a published table.
"""

from hwnas.profiling.errors import MeasurementError, ProfileError, ProviderError
from hwnas.profiling.fingerprint import SCHEMA_VERSION, host_fingerprint
from hwnas.profiling.measure import (DEFAULT_PROTOCOL, Conditions, LatencyStats, Protocol,
                                     export_for_measurement, measure_latency, profile_arch, time_callable)
from hwnas.profiling.runner import RunSummary, import_table, profile_space
from hwnas.profiling.sampling import stratified_sample
from hwnas.profiling.store import DEFAULT_PROFILES_DIR, ProfileStore, list_devices
from hwnas.runtimes.onnxruntime import check_provider, create_session, provider_names

__all__ = [
    "DEFAULT_PROFILES_DIR", "DEFAULT_PROTOCOL", "SCHEMA_VERSION", "Conditions", "LatencyStats",
    "MeasurementError", "ProfileError", "ProfileStore", "Protocol", "ProviderError", "RunSummary",
    "check_provider", "create_session", "export_for_measurement", "host_fingerprint", "import_table",
    "list_devices", "measure_latency", "profile_arch", "profile_space", "provider_names",
    "stratified_sample", "time_callable",
]
