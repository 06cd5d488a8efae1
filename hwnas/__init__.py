"""hwnas: hardware-aware, predictor-driven neural architecture search.

The Python API (see the docs' "From Python" guide)::

    import hwnas
    result = hwnas.start_search(hwnas.RunConfig(budget_ms=0.05, dataset="digits", max_trainings=10))

Every public name is imported explicitly below for type checkers and IDEs (the package ships ``py.typed``); at
run time the modules behind them are imported on first use, so that ``hwnas --help`` does not import torch
(about 2 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from hwnas.api import (accuracy_predictor, evaluate, export, latency_predictor, load_result, profile,
                           resume_search, start_search)
    from hwnas.arch import Arch
    from hwnas.errors import HwnasError
    from hwnas.search.config import ConfigError, RunConfig
    from hwnas.search.config_file import load_run_config
    from hwnas.search.events import SearchCallback
    from hwnas.search.result import Candidate, Finalist, SearchResult, Trial
    from hwnas.search.state import Verified
    from hwnas.search.tracking import MlflowCallback
    from hwnas.training.recipe import Recipe

#: Public name -> module that defines it (the same names as the imports above; a test keeps them equal).
_API = {
    "RunConfig": "hwnas.search.config", "ConfigError": "hwnas.search.config",
    "load_run_config": "hwnas.search.config_file",
    "SearchCallback": "hwnas.search.events", "MlflowCallback": "hwnas.search.tracking",
    "Recipe": "hwnas.training.recipe", "Arch": "hwnas.arch",
    "Verified": "hwnas.search.state", "HwnasError": "hwnas.errors",
    "SearchResult": "hwnas.search.result", "Finalist": "hwnas.search.result", "Trial": "hwnas.search.result",
    "Candidate": "hwnas.search.result",
    "start_search": "hwnas.api", "resume_search": "hwnas.api",
    "load_result": "hwnas.api", "profile": "hwnas.api", "latency_predictor": "hwnas.api",
    "accuracy_predictor": "hwnas.api", "export": "hwnas.api", "evaluate": "hwnas.api",
}

__all__ = ["__version__", "RunConfig", "ConfigError", "load_run_config", "SearchCallback", "MlflowCallback",
           "Recipe", "Arch", "Verified", "HwnasError", "SearchResult", "Finalist", "Trial", "Candidate",
           "start_search", "resume_search", "load_result", "profile", "latency_predictor", "accuracy_predictor",
           "export", "evaluate"]

if not TYPE_CHECKING:  # hidden from type checkers: an unknown name stays an error there
    def __getattr__(name: str) -> Any:
        module = _API.get(name)
        if module is None:
            raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
