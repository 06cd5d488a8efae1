"""The device fingerprint (``device.json``): who measured, on what, under which conditions.

Two kinds of fields:

- *conditions* (:data:`CONDITION_KEYS`) decide whether two measurements are comparable: the runtime and its
  version, provider, threads, batch size, precision, CPU model (and the GPU for GPU providers). Measurements are
  only ever appended to a profile whose conditions equal the current ones (:func:`mismatches`). A profile made
  before runtimes existed has no ``runtime``: it is onnxruntime, at its ``onnxruntime_version``;
- *description* fields (core count, OS, Python, hwnas version, creation time) are informative only.

Nothing in a fingerprint refers to the machine that later *reads* the profile: a profile made on a
Raspberry Pi and copied to the search host means the Pi.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from typing import Any, Mapping

from hwnas import __version__
from hwnas.profiling.measure import Conditions

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

#: Fields that must be equal for measurements to go into the same profile.
CONDITION_KEYS = ("source", "runtime", "runtime_version", "provider", "threads", "batch_size", "precision",
                  "cpu_model")
#: Also compared when the provider runs on a GPU.
GPU_CONDITION_KEYS = ("gpu_name",)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS, else ``platform``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            fields: dict[str, str] = {}
            for line in handle:
                key, sep, value = line.partition(":")
                if sep and key.strip() not in fields and value.strip():
                    fields[key.strip()] = value.strip()
        for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
            if key in fields:
                return fields[key]
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                 timeout=5, check=False).stdout.strip()
            if out:
                return out
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_name() -> str | None:
    """The first NVIDIA GPU's name from ``nvidia-smi``, or None where there is none (or no ``nvidia-smi``)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("nvidia-smi failed: %s", exc)
        return None
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return names[0] if out.returncode == 0 and names else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def host_fingerprint(device: str, conditions: Conditions) -> dict[str, Any]:
    """The fingerprint of a profile measured on this machine under ``conditions`` (its runtime installed)."""
    import onnxruntime as ort

    from hwnas.runtimes import get_runtime

    return {
        "schema_version": SCHEMA_VERSION,
        "device": device,
        "source": "measured",
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpu_name": gpu_name(),
        "os": f"{platform.system()} {platform.release()}".strip(),
        "machine": platform.machine(),
        "python_version": platform.python_version(),
        "onnxruntime_version": ort.__version__,
        "runtime_version": get_runtime(conditions.runtime).version(),
        **conditions.to_dict(),
        "hwnas_version": __version__,
        "created": _now(),
    }


def table_fingerprint(device: str, table_name: str, *, runtime: str | None = None) -> dict[str, Any]:
    """The fingerprint of a profile imported from a published latency table.

    The table's measurement conditions are not known to hwnas, so they are recorded as null (but the runtime
    when the user names it); only other tables (of that runtime) can be added to such a profile.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "device": device,
        "source": "table",
        "tables": [table_name],
        "cpu_model": None,
        "cpu_cores": None,
        "gpu_name": None,
        "os": None,
        "machine": None,
        "python_version": None,
        "onnxruntime_version": None,
        "runtime": runtime,
        "runtime_version": None,
        "provider": None,
        "threads": None,
        "batch_size": None,
        "precision": None,
        "hwnas_version": __version__,
        "created": _now(),
    }


def condition_keys(fingerprint: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys compared by :func:`mismatches` for this fingerprint."""
    if fingerprint.get("provider") not in (None, "cpu"):
        return CONDITION_KEYS + GPU_CONDITION_KEYS
    return CONDITION_KEYS


def runtime_of(fingerprint: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(runtime, its version)`` of a fingerprint; one made before runtimes existed is onnxruntime's (a
    table's is ``(None, None)``)."""
    if fingerprint.get("source") == "table":
        return fingerprint.get("runtime"), fingerprint.get("runtime_version")
    if "runtime" not in fingerprint:
        return "onnxruntime", fingerprint.get("onnxruntime_version")
    return fingerprint.get("runtime"), fingerprint.get("runtime_version")


def _conditions(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    runtime, version = runtime_of(fingerprint)
    return {**fingerprint, "runtime": runtime, "runtime_version": version}


def mismatches(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, stored value, current value)`` for each measurement condition that differs."""
    stored, current = _conditions(stored), _conditions(current)
    keys = dict.fromkeys(condition_keys(stored) + condition_keys(current))
    return [(key, stored.get(key), current.get(key)) for key in keys if stored.get(key) != current.get(key)]
