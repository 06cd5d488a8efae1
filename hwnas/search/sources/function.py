"""The user's own accuracy function as the search's accuracy source: ``accuracy_fn(model, arch) -> float``.

A Python user with their own training loop passes it to :func:`hwnas.start_search`; the loop calls it for every
candidate within the budget with a fresh, untrained ``torch.nn.Module`` built by the space for the run's input
shape and classes (seeded by the run's seed), and the architecture. It returns the model's validation accuracy
(any scale, the same for every call: 0-1 or percent). The run records the function's name; each returned
accuracy is saved in the run's state the moment the call returns, so a resumed run never calls it twice for
one architecture. A run made with a function resumes only from Python with a function again.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from hwnas.arch import Arch
from hwnas.search.config import RunConfig
from hwnas.search.state import SearchError
from hwnas.spaces.base import SearchSpace

AccuracyFn = Callable[[Any, Arch], float]


def function_name(fn: Callable) -> str:
    """``module.qualname`` of a function (what ``config.json`` records)."""
    return f"{getattr(fn, '__module__', None) or '?'}.{getattr(fn, '__qualname__', None) or type(fn).__name__}"


class FunctionAccuracy:
    """Accuracy from ``fn(model, arch)``.

    Args:
        fn: The user's function.
        space: The search space (builds the model).
        input_shape: ``(C, H, W)`` of the model's input.
        num_classes: Classes of its output.
        seed: Seed of the model's initial weights.
    """

    def __init__(self, fn: AccuracyFn, space: SearchSpace, *, input_shape, num_classes: int, seed: int) -> None:
        self.fn = fn
        self.space = space
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)
        self.seed = int(seed)

    @classmethod
    def for_run(cls, config: RunConfig, space: SearchSpace, fn: AccuracyFn | None) -> "FunctionAccuracy":
        """The source of a run made with a function (``config.accuracy_function``).

        Raises:
            SearchError: the run was made with a function and none is given (a resume from the command line),
                or a function is given to a run that trains.
        """
        if fn is None:
            raise SearchError(f"this run's accuracies come from the Python function {config.accuracy_function}; "
                              f"resume it from Python: hwnas.resume_search(RUN_DIR, accuracy_fn=...)")
        if config.accuracy_function is None:
            raise SearchError("this run trains its candidates; an accuracy function applies only to a run started "
                              "with one")
        if not callable(fn):
            raise SearchError(f"accuracy_fn must be callable, got {fn!r}")
        return cls(fn, space, input_shape=config.input_shape, num_classes=config.num_classes, seed=config.seed)

    def evaluate(self, arch: Arch) -> dict[str, Any]:
        import torch

        torch.manual_seed(self.seed)
        model = self.space.build(arch, self.input_shape, self.num_classes)
        params = sum(p.numel() for p in model.parameters())
        start = time.perf_counter()
        value = self.fn(model, arch)
        seconds = time.perf_counter() - start
        try:
            accuracy = float(value)
        except (TypeError, ValueError):
            accuracy = math.nan
        if not math.isfinite(accuracy):
            raise SearchError(f"accuracy_fn returned {value!r} for {arch.string}: expected a finite number")
        if not 0.0 <= accuracy <= 1.0:
            raise SearchError(f"accuracy_fn returned {value!r} for {arch.string}: expected a validation accuracy "
                              f"between 0 and 1 (a fraction, not a percentage)")
        return {"accuracy": accuracy, "params": params, "wall_time_s": seconds, "seed": self.seed}

    #: Each call builds and evaluates a real model (its parameters and MACs are recorded).
    trains = True

    def known(self) -> list[tuple[str, float]]:
        """Nothing beyond the run's own state (which records every returned accuracy)."""
        return []
