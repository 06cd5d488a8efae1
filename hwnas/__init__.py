"""hwnas: hardware-aware, predictor-driven neural architecture search.

The Python API (see README, "From Python") is loaded on first use, so ``hwnas --help`` stays fast::

    import hwnas
    result = hwnas.start_search(hwnas.RunConfig(budget_ms=0.05, dataset="digits", max_trainings=10))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> module that defines it.
_API = {
    "RunConfig": "hwnas.search.config", "ConfigError": "hwnas.search.config",
    "SearchCallback": "hwnas.search.events", "MlflowCallback": "hwnas.search.tracking",
    "Recipe": "hwnas.training.recipe", "Arch": "hwnas.arch",
    "Verified": "hwnas.search.state", "HwnasError": "hwnas.errors",
    "SearchResult": "hwnas.api", "Finalist": "hwnas.api", "start_search": "hwnas.api", "resume_search": "hwnas.api",
    "load_result": "hwnas.api", "profile": "hwnas.api", "latency_predictor": "hwnas.api",
    "accuracy_predictor": "hwnas.api", "export": "hwnas.api", "evaluate": "hwnas.api",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
