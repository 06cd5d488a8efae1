"""The environment the Ray tests' hwnas and ``ray start`` processes run in (``test_ray_waits.py``,
``test_ray_workflow.py``): a HOME of their own (nothing lands in the real one), this checkout first on the path,
and no Ray address or auth setting of the caller's."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """The environment; its HOME is ``tmp_path / "home"`` (made here)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", "MPLCONFIGDIR": str(tmp_path / "mpl"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH",
                 "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):  # test_ray.py sets it in this process
        env.pop(name, None)
    return env
