"""An additive latency model: latency = sum over operators of a non-negative cost per unit of work.

On a CPU a small network's latency is close to a sum of its operators' costs (nn-Meter and LitePred predict
per kernel for that reason), and what decides an operator's cost is its kind and size as the runtime
computes it: onnxruntime's blocked layout pads channel counts to 16, squeeze-excite's gate falls out of that
layout and costs two extra conversions. :class:`~hwnas.predictors.features.OpFeaturizer` gives those terms;
this model weighs them by non-negative least squares on the *relative* error (each record weighs 1/latency), so
a prediction is always positive and small models count as much as large ones. Two trimmed refits drop records
more than 20% off the fit (a measurement disturbed by other work on the machine) when at least half remain.

Measured on this CPU at the default task's shape (mobilenet, 1x32x32, 5-fold cross-validation over 200
profiled architectures, 3 subsets; ``benchmarks/fewshot_latency.py --parts machine``): 99.7% of architectures
within +-10%, against 85.8% for the XGBoost ensemble on the architecture features.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hwnas import __version__
from hwnas.arch import Arch
from hwnas.io import atomic_write_json
from hwnas.predictors.features import ArchFeaturizer, OpFeaturizer
from hwnas.predictors.model import (ALGORITHMS, META_FILE, SCHEMA_VERSION, PredictorError, TaskFeatures, check_task,
                                    checked_records, read_meta, save_folder)

ALGORITHM = "additive"
#: Relative error beyond which a record is left out of the trimmed refits.
TRIM = 0.2

_OP_FEATURIZERS: dict[tuple, OpFeaturizer] = {}


def shared_op_featurizer(task: tuple, space: str, space_options, input_shape, num_classes) -> OpFeaturizer:
    """One :class:`OpFeaturizer` per task for the process (units are built once, not at every fit)."""
    featurizer = _OP_FEATURIZERS.get(task)
    if featurizer is None:
        featurizer = _OP_FEATURIZERS[task] = OpFeaturizer(space, space_options, input_shape, num_classes)
        while len(_OP_FEATURIZERS) > 4:
            _OP_FEATURIZERS.pop(next(iter(_OP_FEATURIZERS)))
    return featurizer


def nnls_relative(x: np.ndarray, y: np.ndarray, *, trims: int = 2) -> np.ndarray:
    """Non-negative coefficients minimising the summed squared relative error of ``x @ coef`` against ``y``,
    refit ``trims`` times without the records more than :data:`TRIM` off (while at least half remain)."""
    from scipy.optimize import nnls

    scale = np.abs(x).max(axis=0) + 1e-12
    weight = 1.0 / y
    keep = np.ones(len(y), dtype=bool)
    coef = np.zeros(x.shape[1])
    for attempt in range(trims + 1):
        try:
            solution, _ = nnls((x[keep] / scale) * weight[keep, None], y[keep] * weight[keep],
                               maxiter=50 * x.shape[1])
        except RuntimeError as exc:  # scipy: "Maximum number of iterations reached."
            raise PredictorError(f"the additive latency model did not converge ({exc})") from None
        coef = solution / scale
        if attempt == trims:
            break
        good = np.abs(x @ coef / y - 1.0) < TRIM
        if good.sum() < len(y) / 2 or np.array_equal(good, keep):
            break
        keep = good
    return coef


class AdditiveLatencyPredictor(TaskFeatures):
    """Latency in ms as a non-negative sum of per-operator terms; a bootstrap ensemble gives the spread.

    Satisfies :class:`hwnas.predictors.Predictor`.

    Args:
        space, space_options, input_shape, num_classes: The task.
        ensemble_size: Bootstrap members (their spread is the uncertainty; the first member is fit on all
            records).
        random_state: Seed of the resampling.
    """

    kind = "latency"
    algorithm = ALGORITHM
    log_target = True
    _PARAMS = ("space", "space_options", "input_shape", "num_classes", "ensemble_size", "random_state")

    def __init__(self, *, space: str = "mobilenet", space_options: Mapping[str, Any] | None = None,
                 input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10, ensemble_size: int = 5,
                 random_state: int = 0, **_ignored: Any) -> None:
        self.space = space
        self.space_options = space_options
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.ensemble_size = ensemble_size
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in self._PARAMS}
        params["space_options"] = dict(self.space_options or {})
        params["input_shape"] = [int(d) for d in self.input_shape]
        return params

    def op_featurizer(self) -> OpFeaturizer:
        return shared_op_featurizer(self.task, self.space, self.space_options, self.input_shape, self.num_classes)

    def fit(self, archs: Sequence[str | Arch], y, *, featurizer: ArchFeaturizer | None = None
            ) -> "AdditiveLatencyPredictor":
        """Fits the member models on measured latencies (``featurizer``: unused, for the common contract)."""
        archs, y = checked_records(archs, y, positive=True)
        x = self.op_featurizer().transform(archs)
        rng = np.random.default_rng(self.random_state)
        members = [nnls_relative(x, y)]
        for _ in range(max(0, self.ensemble_size - 1)):
            index = rng.integers(0, len(y), len(y))
            members.append(nnls_relative(x[index], y[index]))
        self.coef_ = np.stack(members)
        self.n_train_ = len(y)
        self.target_range_ = (float(y.min()), float(y.max()))
        self.featurizer_ = self.shared_featurizer()
        return self

    def predict_dist(self, archs: Sequence[str | Arch]) -> tuple[np.ndarray, np.ndarray]:
        """The full-data member's prediction, and the bootstrap members' spread."""
        if not hasattr(self, "coef_"):
            raise PredictorError("predictor is not fitted")
        archs = list(archs)
        if not archs:
            return np.zeros(0), np.zeros(0)
        x = self.op_featurizer().transform(archs)
        members = np.maximum(x @ self.coef_.T, 1e-9)  # (archs, members)
        return members[:, 0], members.std(axis=1)

    def predict(self, archs: Sequence[str | Arch]) -> np.ndarray:
        return self.predict_dist(archs)[0]

    def costs(self) -> dict[str, float]:
        """The full-data fit's cost of each term (ms per unit: per operator for counts, per MAC or element)."""
        return dict(zip(self.op_featurizer().feature_names_, (float(c) for c in self.coef_[0])))

    # -- persistence -----------------------------------------------------------------------------------------
    def meta(self, *, scores: Mapping[str, Any] | None = None, source: Mapping[str, Any] | None = None) -> dict:
        featurizer = self.shared_featurizer()
        return {
            "schema_version": SCHEMA_VERSION, "kind": self.kind, "algorithm": ALGORITHM, "space": self.space,
            "space_options": dict(self.space_options or {}), "input_shape": [int(d) for d in self.input_shape],
            "num_classes": int(self.num_classes), "features": list(featurizer.feature_names_),
            "feature_schema": featurizer.schema, "terms": list(self.op_featurizer().feature_names_),
            "n_train": int(self.n_train_), "target_range": list(self.target_range_), "log_target": True,
            "params": self.get_params(), "models": [], "coef": self.coef_.tolist(),
            "scores": dict(scores or {}), "source": dict(source or {}), "hwnas_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def save(self, directory: str | os.PathLike, *, scores: Mapping[str, Any] | None = None,
             source: Mapping[str, Any] | None = None) -> Path:
        """Writes ``meta.json`` (the coefficients are in it) into ``directory``, replaced atomically."""
        if not hasattr(self, "coef_"):
            raise PredictorError("predictor is not fitted")
        return save_folder(directory, lambda staging: atomic_write_json(
            staging / META_FILE, self.meta(scores=scores, source=source)))

    @classmethod
    def load(cls, directory: str | os.PathLike, *, space: str | None = None,
             input_shape: Sequence[int] | None = None) -> "AdditiveLatencyPredictor":
        folder = Path(directory)
        meta = read_meta(folder)
        if meta.get("algorithm") != ALGORITHM:
            raise PredictorError(f"{folder} holds no additive predictor")
        check_task(folder, meta, space=space, input_shape=input_shape)
        predictor = cls(**{k: v for k, v in meta["params"].items() if k in cls._PARAMS})
        if meta.get("terms") != predictor.op_featurizer().feature_names_:
            raise PredictorError(f"{folder} was fit on other operator terms than this hwnas computes; refit it")
        coef = np.asarray(meta["coef"], dtype=float)
        if coef.ndim != 2 or coef.shape[1] != len(meta["terms"]) or not np.all(np.isfinite(coef)) \
                or np.any(coef < 0):
            raise PredictorError(f"{folder}/meta.json is corrupt: 'coef' must list non-negative costs per term; "
                                 f"refit it")
        predictor.coef_ = coef
        predictor.n_train_ = int(meta["n_train"])
        predictor.target_range_ = tuple(meta["target_range"])
        predictor.featurizer_ = predictor.shared_featurizer()
        predictor.meta_ = meta
        return predictor


ALGORITHMS[ALGORITHM] = AdditiveLatencyPredictor
