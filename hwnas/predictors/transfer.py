"""A latency predictor for a device with few measurements, transferred from devices already profiled.

Latencies of one architecture on different devices are strongly related, so a new device's latency is
predicted as a ridge regression of its log-latency on the *other* devices' log-latencies of the same
architecture (each source column standardised over the source's own table), fitted on the architectures the
new device has measured. Where a source has not measured an architecture, its own XGBoost predictor (fit on
its profile) stands in for the measurement.

Measured on the 20 devices of the HELP release of NAS-Bench-201 latencies, leaving one device out
(``benchmarks/fewshot_latency.py``): this beat the best single source's log-linear fit, non-negative least
squares, the top-3 sources, XGBoost with the sources as features and ridge + an XGBoost residual on the
architecture features at 5 to 50 own measurements. The ridge penalty is chosen by exact leave-one-out
cross-validation over ``alphas`` (bounded below at 0.1: with 19 collinear sources a smaller penalty overfits).
With few own measurements the ridge is blended (in log space) with a log-linear fit on the single source that
correlates best with them, weighted ``min(0.5, 5 / n)``: on the same benchmark this raised the mean Spearman
from 0.939 to 0.955 at n = 5 and from 0.974 to 0.977 at n = 20, at no cost in the share within +-10% from
n = 20 on (it costs 1 point of it at n = 10).

The predictor is self-contained: :meth:`TransferLatencyPredictor.save` stores the sources' latencies (and
their fallback predictors) beside the coefficients, so it loads and predicts when the source profiles are gone.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hwnas import __version__
from hwnas.arch import Arch
from hwnas.io import atomic_write_bytes, atomic_write_json
from hwnas.predictors.features import ArchFeaturizer
from hwnas.predictors.model import (ALGORITHMS, META_FILE, SCHEMA_VERSION, LatencyPredictor, PredictorError,
                                    TaskFeatures, check_task, checked_records, read_meta, save_folder)

ALGORITHM = "transfer"
#: Ridge penalties tried by leave-one-out cross-validation.
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 3, 17))
SOURCES_FILE = "sources.npz"
_FLOAT = np.float64


@dataclass
class LatencySource:
    """Another device's measured latencies of one task (space, its options, input shape): a transfer source.

    Args:
        name: The source's profile name (``pixel3``, ``host.openvino``).
        latencies: Canonical architecture string -> median latency in ms.
        info: What is recorded about it (runtime, provider, threads, batch size, precision, where it came from).
        complete: It holds every architecture of the space, so no architecture ever needs its fallback.
    """

    name: str
    latencies: Mapping[str, float]
    info: Mapping[str, Any] = field(default_factory=dict)
    complete: bool = False
    fallback: LatencyPredictor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        values = np.fromiter(self.latencies.values(), dtype=_FLOAT, count=len(self.latencies))
        if len(values) < 2:
            raise PredictorError(f"transfer source {self.name!r} holds {len(values)} latencies; at least 2 are "
                                 f"needed")
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise PredictorError(f"transfer source {self.name!r} holds latencies that are not positive numbers")
        logs = np.log(values)
        self.mean_log = float(logs.mean())
        spread = float(logs.std())
        self.std_log = spread if spread > 1e-9 else 1.0  # all equal: a constant column, not one to blow up

    def log_latencies(self, archs: Sequence[str], *, task: "TransferLatencyPredictor") -> np.ndarray:
        """Log-latency of each architecture: measured where the source holds it, else its fallback's."""
        out = np.empty(len(archs), dtype=_FLOAT)
        missing = []
        for i, arch in enumerate(archs):
            value = self.latencies.get(arch)
            if value is None:
                missing.append(i)
            else:
                out[i] = value
        if missing:
            model = self.fallback_model(task)
            out[missing] = model.predict([archs[i] for i in missing])
        return np.log(np.maximum(out, 1e-12))

    def fallback_model(self, task: "TransferLatencyPredictor") -> LatencyPredictor:
        """The source's own latency predictor (fit once, on its latencies, when first needed)."""
        if self.fallback is None:
            archs = sorted(self.latencies)
            model = LatencyPredictor(space=task.space, space_options=task.space_options,
                                     input_shape=task.input_shape, num_classes=task.num_classes,
                                     random_state=task.random_state)
            self.fallback = model.fit(archs, [self.latencies[a] for a in archs],
                                      featurizer=model.shared_featurizer())
        return self.fallback


def _best_single(x: np.ndarray, t: np.ndarray) -> tuple[int, float, float]:
    """``(column, slope, intercept)`` of the least-squares line of ``t`` on the column of ``x`` that correlates
    best with it (the first column, flat, when none varies)."""
    best, best_r = 0, -np.inf
    for j in range(x.shape[1]):
        if np.ptp(x[:, j]) > 0 and np.ptp(t) > 0:
            r = float(np.corrcoef(x[:, j], t)[0, 1])
            if r > best_r:
                best, best_r = j, r
    if not np.isfinite(best_r):
        return 0, 0.0, float(t.mean())
    slope, offset = np.polyfit(x[:, best], t, 1)
    return best, float(slope), float(offset)


class TransferLatencyPredictor(TaskFeatures):
    """Latency in ms as a ridge regression on other devices' log-latencies (see the module docstring).

    Satisfies :class:`hwnas.predictors.Predictor`. Scikit-learn conventions: no logic in ``__init__``, ``fit``
    returns ``self``, learned attributes end in ``_``.

    Args:
        sources: The source devices' latencies of this task.
        space, space_options, input_shape, num_classes: The task (as for :class:`LatencyPredictor`).
        alphas: Ridge penalties tried by leave-one-out cross-validation.
        single_weight: Weight of the best single source's log-linear fit in the blend (``None``:
            ``min(0.5, 5 / n)`` for ``n`` own measurements; 0: the ridge alone).
        random_state: Seed of the sources' fallback predictors.
    """

    kind = "latency"
    algorithm = ALGORITHM
    log_target = True
    _PARAMS = ("space", "space_options", "input_shape", "num_classes", "alphas", "single_weight", "random_state")

    def __init__(self, sources: Sequence[LatencySource] = (), *, space: str = "mobilenet",
                 space_options: Mapping[str, Any] | None = None, input_shape: Sequence[int] = (1, 8, 8),
                 num_classes: int = 10, alphas: Sequence[float] = DEFAULT_ALPHAS, single_weight: float | None = None,
                 random_state: int = 0, **_ignored: Any) -> None:
        self.sources = list(sources)
        self.space = space
        self.space_options = space_options
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.alphas = alphas
        self.single_weight = single_weight
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in self._PARAMS}
        params["alphas"] = [float(a) for a in self.alphas]
        params["space_options"] = dict(self.space_options or {})
        params["input_shape"] = [int(d) for d in self.input_shape]
        return params

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]

    # -- fitting and prediction ------------------------------------------------------------------------------
    def _strings(self, archs: Sequence[str | Arch]) -> list[str]:
        """Canonical strings; one every source holds is canonical already (parsing all 15,625 NAS-Bench-201
        cells at every prediction would cost more than the regression)."""
        out = []
        featurizer = None
        for arch in archs:
            if isinstance(arch, Arch):
                out.append(self.shared_featurizer().parse(arch).string)
            elif all(arch in s.latencies for s in self.sources):
                out.append(arch)
            else:
                featurizer = featurizer or self.shared_featurizer()
                out.append(featurizer.parse(arch).string)
        return out

    def _design(self, strings: Sequence[str]) -> np.ndarray:
        columns = [(s.log_latencies(strings, task=self) - s.mean_log) / s.std_log for s in self.sources]
        return np.column_stack(columns) if columns else np.zeros((len(strings), 0))

    def fit(self, archs: Sequence[str | Arch], y, *, featurizer: ArchFeaturizer | None = None
            ) -> "TransferLatencyPredictor":
        """Fits the ridge regression on the device's own measurements.

        Args:
            archs: The measured architectures.
            y: Their latencies in ms.
            featurizer: Unused (the features are the sources' latencies); accepted for the common contract.
        """
        from sklearn.linear_model import RidgeCV

        if not self.sources:
            raise PredictorError("a transfer predictor needs at least one source device")
        archs, y = checked_records(archs, y, positive=True)
        x = self._design(self._strings(archs))
        t = np.log(y)
        alphas = np.asarray(self.alphas, dtype=_FLOAT)
        if alphas.size == 0 or np.any(alphas <= 0):
            raise PredictorError("alphas must be positive ridge penalties")
        model = RidgeCV(alphas=alphas, store_cv_results=True).fit(x, t)
        best = int(np.argmin(np.abs(alphas - model.alpha_)))
        loo = np.asarray(model.cv_results_)[:, best] if np.ndim(model.cv_results_) == 2 else model.cv_results_
        weight = min(0.5, 5.0 / len(t)) if self.single_weight is None else float(self.single_weight)
        if not 0.0 <= weight <= 1.0:
            raise PredictorError(f"single_weight must be between 0 and 1, not {self.single_weight!r}")
        j, slope, offset = _best_single(x, t)
        # The blend is linear in the standardised sources too: one coefficient vector does both.
        coef = (1 - weight) * np.asarray(model.coef_, dtype=_FLOAT)
        coef[j] += weight * slope
        self.coef_ = coef
        self.intercept_ = float((1 - weight) * model.intercept_ + weight * offset)
        self.single_ = {"source": self.sources[j].name, "weight": weight, "slope": float(slope),
                        "intercept": float(offset)}
        self.alpha_ = float(model.alpha_)
        self.rmse_log_ = float(np.sqrt(np.mean(loo))) if len(t) > 2 else 0.1
        self.n_train_ = len(t)
        self.target_range_ = (float(y.min()), float(y.max()))
        self.featurizer_ = self.shared_featurizer()
        return self

    def predict_dist(self, archs: Sequence[str | Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Median prediction, and a spread from the fit's leave-one-out error in log space."""
        if not hasattr(self, "coef_"):
            raise PredictorError("predictor is not fitted")
        archs = list(archs)
        if not archs:
            return np.zeros(0), np.zeros(0)
        mean = np.exp(self._design(self._strings(archs)) @ self.coef_ + self.intercept_)
        return mean, mean * self.rmse_log_

    def predict(self, archs: Sequence[str | Arch]) -> np.ndarray:
        return self.predict_dist(archs)[0]

    def weights(self) -> dict[str, float]:
        """Each source's coefficient on its standardised log-latency (how much the fit leans on it)."""
        return {s.name: float(w) for s, w in zip(self.sources, self.coef_)}

    # -- persistence -----------------------------------------------------------------------------------------
    def meta(self, *, scores: Mapping[str, Any] | None = None, source: Mapping[str, Any] | None = None) -> dict:
        featurizer = self.shared_featurizer()
        return {
            "schema_version": SCHEMA_VERSION, "kind": self.kind, "algorithm": ALGORITHM, "space": self.space,
            "space_options": dict(self.space_options or {}), "input_shape": [int(d) for d in self.input_shape],
            "num_classes": int(self.num_classes), "features": list(featurizer.feature_names_),
            "feature_schema": featurizer.schema, "n_train": int(self.n_train_),
            "target_range": list(self.target_range_), "log_target": True, "params": self.get_params(),
            "models": [], "coef": [float(w) for w in self.coef_], "intercept": self.intercept_,
            "alpha": self.alpha_, "rmse_log": self.rmse_log_, "single": self.single_,
            "sources": [{"name": s.name, "info": dict(s.info), "records": len(s.latencies), "complete": s.complete,
                         "weight": float(w),
                         "fallback": f"source_{i}" if not s.complete or s.fallback is not None else None}
                        for i, (s, w) in enumerate(zip(self.sources, self.coef_))],
            "scores": dict(scores or {}), "source": dict(source or {}), "hwnas_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def save(self, directory: str | os.PathLike, *, scores: Mapping[str, Any] | None = None,
             source: Mapping[str, Any] | None = None) -> Path:
        """Writes ``meta.json``, the sources' latencies (``sources.npz``: one column per source, NaN where it
        has not measured) and each incomplete source's fallback predictor (``source_<i>/``), replacing
        ``directory`` atomically."""
        if not hasattr(self, "coef_"):
            raise PredictorError("predictor is not fitted")

        def write(staging: Path) -> None:
            archs = sorted(set().union(*(s.latencies for s in self.sources)))
            table = np.full((len(archs), len(self.sources)), np.nan, dtype=_FLOAT)
            row = {a: i for i, a in enumerate(archs)}
            for j, s in enumerate(self.sources):
                for arch, value in s.latencies.items():
                    table[row[arch], j] = value
            buffer = io.BytesIO()
            np.savez_compressed(buffer, archs=np.array(archs, dtype=str), latency_ms=table)
            data = buffer.getvalue()
            atomic_write_bytes(staging / SOURCES_FILE, data)
            for i, s in enumerate(self.sources):
                if not s.complete or s.fallback is not None:
                    s.fallback_model(self).save(staging / f"source_{i}", source={"transfer_source": s.name})
            meta = self.meta(scores=scores, source=source)
            meta["sources_sha256"] = hashlib.sha256(data).hexdigest()
            atomic_write_json(staging / META_FILE, meta)

        return save_folder(directory, write)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, space: str | None = None,
             input_shape: Sequence[int] | None = None) -> "TransferLatencyPredictor":
        """Loads a saved transfer predictor (its sources come from its own folder, not from the profiles)."""
        folder = Path(directory)
        meta = read_meta(folder)
        if meta.get("algorithm") != ALGORITHM:
            raise PredictorError(f"{folder} holds no transfer predictor")
        check_task(folder, meta, space=space, input_shape=input_shape)
        params = {k: v for k, v in meta["params"].items() if k in cls._PARAMS}
        path = folder / SOURCES_FILE
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PredictorError(f"cannot read {path}: {exc.strerror or exc}; refit the predictor") from None
        if meta.get("sources_sha256") != hashlib.sha256(raw).hexdigest():
            raise PredictorError(f"{path} is not the file its meta.json was saved with (checksum differs); refit "
                                 f"the predictor")
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                archs, table = [str(a) for a in data["archs"]], np.asarray(data["latency_ms"], dtype=_FLOAT)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise PredictorError(f"cannot read {path}: {exc}; refit the predictor") from None
        entries = meta["sources"]
        if table.shape != (len(archs), len(entries)) or len(meta["coef"]) != len(entries):
            raise PredictorError(f"{folder} is inconsistent: {len(entries)} sources, {len(meta['coef'])} "
                                 f"coefficients and a table of shape {table.shape}; refit it")
        sources = []
        for j, entry in enumerate(entries):
            present = ~np.isnan(table[:, j])
            latencies = {archs[i]: float(table[i, j]) for i in np.flatnonzero(present)}
            if entry.get("records") != len(latencies) or (not entry.get("complete") and not entry.get("fallback")):
                raise PredictorError(f"{folder}/meta.json is inconsistent with {SOURCES_FILE} for source "
                                     f"{entry.get('name')!r}; refit the predictor")
            fallback = None
            if entry.get("fallback"):
                fallback = LatencyPredictor.load(folder / f"source_{j}", space=meta["space"],
                                                 input_shape=meta["input_shape"])
            sources.append(LatencySource(str(entry["name"]), latencies, info=dict(entry.get("info") or {}),
                                         complete=bool(entry.get("complete")), fallback=fallback))
        predictor = cls(sources, **params)
        predictor.coef_ = np.asarray(meta["coef"], dtype=_FLOAT)
        predictor.intercept_ = float(meta["intercept"])
        predictor.alpha_ = float(meta["alpha"])
        predictor.single_ = dict(meta.get("single") or {})
        predictor.rmse_log_ = float(meta["rmse_log"])
        predictor.n_train_ = int(meta["n_train"])
        predictor.target_range_ = tuple(meta["target_range"])
        predictor.featurizer_ = predictor.shared_featurizer()
        predictor.meta_ = meta
        return predictor


ALGORITHMS[ALGORITHM] = TransferLatencyPredictor
