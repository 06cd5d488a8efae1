"""XGBoost predictors of latency and accuracy, with uncertainty, saved in XGBoost's own format.

Both follow scikit-learn conventions: no logic in ``__init__``, ``fit`` returns ``self``, learned attributes
end in ``_``, randomness from ``random_state``. A predictor is an ensemble of XGBoost regressors over the
:class:`~hwnas.predictors.features.ArchFeaturizer` features; the ensemble's spread is the uncertainty that
lets a search explore where the predictor is unsure.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwnas import __version__
from hwnas.arch import Arch
from hwnas.errors import HwnasError
from hwnas.io import atomic_write_bytes, atomic_write_json, finite_number, folder_mode, read_json_object
from hwnas.predictors.features import ArchFeaturizer
from hwnas.registry import Registry

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
META_FILE = "meta.json"
_MODEL_FILE_RE = re.compile(r"^model_[0-9]{1,4}\.json$")


class PredictorError(HwnasError):
    """A predictor cannot be fitted, saved or loaded as asked."""


class TaskFeatures:
    """What every predictor derives from its task (attributes ``space``, ``space_options``, ``input_shape``,
    ``num_classes``): the task key and its featurizers."""

    space: str
    space_options: Mapping[str, Any] | None
    input_shape: Sequence[int]
    num_classes: int

    @property
    def task(self) -> tuple:
        """What the features depend on (space, its options, input shape, classes): predictors of one task share
        a featurizer (:meth:`make_featurizer`)."""
        return (self.space, repr(sorted((self.space_options or {}).items())), tuple(self.input_shape),
                int(self.num_classes))

    def make_featurizer(self) -> ArchFeaturizer:
        return ArchFeaturizer(space=self.space, space_options=self.space_options,
                              input_shape=tuple(self.input_shape), num_classes=self.num_classes).fit()

    def shared_featurizer(self) -> ArchFeaturizer:
        """This process's featurizer of the predictor's task (:func:`shared_featurizer`)."""
        return shared_featurizer(self)


def checked_records(archs: Sequence[str | Arch], y, *, positive: bool = False) -> tuple[list, np.ndarray]:
    """``(archs as a list, y as floats)``, refused (PredictorError) unless there is one target per architecture
    and at least 2 records -- and, with ``positive``, every target a positive finite number (a latency)."""
    y = np.asarray(y, dtype=float).ravel()
    archs = list(archs)
    if len(archs) != len(y):
        raise PredictorError(f"{len(archs)} architectures but {len(y)} targets")
    if len(archs) < 2:
        raise PredictorError("need at least 2 records to fit a predictor")
    if positive and (not np.all(np.isfinite(y)) or np.any(y <= 0)):
        raise PredictorError("latency targets must be positive")
    return archs, y


def check_task(directory: str | os.PathLike, meta: Mapping[str, Any], *, space: str | None,
               input_shape: Sequence[int] | None) -> None:
    """Refuses a saved predictor of another space or input shape than asked for (None: any)."""
    if space is not None and meta["space"] != space:
        raise PredictorError(f"{directory} predicts the {meta['space']!r} space, not {space!r}")
    if input_shape is not None and list(input_shape) != list(meta["input_shape"]):
        raise PredictorError(f"{directory} was fit for input shape {meta['input_shape']}, not {list(input_shape)}")


def save_folder(directory: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Has ``write`` fill a staging folder beside ``directory``, then puts it in place of ``directory`` at once
    (:func:`_replace_dir`); the staging folder is removed if anything fails."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging.chmod(folder_mode())  # mkdtemp makes it 0700: the folder takes the umask's mode, as its files do
        write(staging)
        _replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


class XGBPredictor(TaskFeatures):
    """Ensemble of XGBoost regressors on architecture features.

    Args:
        space: Name of the search space.
        space_options: Keyword arguments of the space's constructor.
        input_shape: ``(C, H, W)`` of the task's inputs.
        num_classes: Number of classes of the task.
        n_estimators: Boosting rounds per ensemble member.
        max_depth: Tree depth.
        learning_rate: Shrinkage.
        subsample: Row subsampling per tree.
        colsample_bytree: Column subsampling per tree.
        min_child_weight: Minimum hessian weight in a leaf.
        ensemble_size: Number of members; their spread is the uncertainty.
        bootstrap: Train each member on a bootstrap resample (otherwise only the seeds differ).
        random_state: Seed of the resampling and of XGBoost.
        objective: XGBoost objective: a regression one (``"reg:squarederror"``: the prediction is in the
            target's units) or ``"rank:pairwise"`` (the members learn an order of all training records as one
            query; a prediction is then a score on an arbitrary scale, larger = better, not the target).
        rank_pairs: Pairs sampled per record and round by a ranking objective
            (``lambdarank_num_pair_per_sample``); XGBoost's default of 1 learns far too slowly on small sets.
        target: ``"raw"``: the members learn the target itself; ``"quantile"``: they learn the normal scores
            of the training targets' ranks (every record weighs the same, so the many poor architectures of a
            skewed accuracy distribution no longer dominate the squared error), and predictions are mapped
            back to the target's units through the training set's (normal score, target) pairs: piecewise
            linear, extrapolated linearly beyond them. Not with a log target; a ranking objective ignores it
            (an order is invariant to monotone transforms).
        n_jobs: XGBoost threads. 1 by default: the training sets are small (tens to thousands of rows), where
            XGBoost's thread pool costs more than it gains and stalls badly on a busy machine (measured: 0.15 s
            single-threaded vs 7-9 s with 2 threads for 300 trees on 80 rows on a loaded 2-core machine).
    """

    kind = "generic"
    log_target = False

    def __init__(self, *, space: str = "mobilenet", space_options: Mapping[str, Any] | None = None,
                 input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10, n_estimators: int = 400,
                 max_depth: int = 4, learning_rate: float = 0.05, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, min_child_weight: float = 1.0, ensemble_size: int = 5,
                 bootstrap: bool = True, random_state: int = 0, n_jobs: int | None = 1,
                 objective: str = "reg:squarederror", rank_pairs: int = 32, target: str = "raw") -> None:
        self.space = space
        self.space_options = space_options
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.ensemble_size = ensemble_size
        self.bootstrap = bootstrap
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.objective = objective
        self.rank_pairs = rank_pairs
        self.target = target

    # -- parameters ------------------------------------------------------------------------------------------
    _PARAMS = ("space", "space_options", "input_shape", "num_classes", "n_estimators", "max_depth",
               "learning_rate", "subsample", "colsample_bytree", "min_child_weight", "ensemble_size", "bootstrap",
               "random_state", "n_jobs", "objective", "rank_pairs", "target")

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._PARAMS}

    # -- fitting and prediction ------------------------------------------------------------------------------
    @property
    def ranks(self) -> bool:
        """Whether the objective is a ranking one: predictions are scores, not values of the target."""
        return self.objective.startswith("rank:")

    @property
    def _quantile(self) -> bool:
        return self.target == "quantile" and not self.ranks

    def _to_target(self, y: np.ndarray) -> np.ndarray:
        """What the members learn; with the quantile target, also records the map back (``target_map_``)."""
        if self._quantile:
            from scipy.special import ndtri
            from scipy.stats import rankdata

            t = ndtri((rankdata(y) - 0.5) / len(y))
            scores, first = np.unique(t, return_index=True)
            self.target_map_ = (scores, y[first])
            return t
        return np.log(y) if self.log_target else y

    def _from_target(self, t: np.ndarray) -> np.ndarray:
        if self._quantile:
            return _interp_extrapolate(t, *self.target_map_)
        return np.exp(t) if self.log_target else t

    def fit(self, archs: Sequence[str | Arch], y, *, featurizer: ArchFeaturizer | None = None) -> "XGBPredictor":
        """Fits the ensemble on architectures and their measured values.

        Args:
            archs: Canonical strings or :class:`Arch` objects.
            y: Measured values (latency in ms, or validation accuracy).
            featurizer: A fitted featurizer with the same settings, to reuse its caches.
        """
        from xgboost import XGBRegressor

        archs, y = checked_records(archs, y)
        if self.log_target and np.any(y <= 0):
            raise PredictorError("latency targets must be positive")
        if not self.objective.startswith(("reg:", "rank:")):
            raise PredictorError(f"objective {self.objective!r} is neither a regression ('reg:...') nor a "
                                 f"ranking ('rank:...') one")
        if self.ranks and self.log_target:
            raise PredictorError(f"a {self.kind} predictor needs values in the target's units, not a ranking")
        if self.target not in ("raw", "quantile"):
            raise PredictorError(f"target must be 'raw' or 'quantile', not {self.target!r}")
        if self.target == "quantile" and self.log_target:
            raise PredictorError("target='quantile' does not combine with a log target")
        extra = ({"lambdarank_num_pair_per_sample": int(self.rank_pairs), "lambdarank_pair_method": "mean"}
                 if self.ranks else {})
        self.featurizer_ = featurizer if featurizer is not None else self.make_featurizer()
        x = self.featurizer_.transform(archs)
        t = self._to_target(y)
        rng = np.random.default_rng(self.random_state)
        self.models_ = []
        for _ in range(self.ensemble_size):
            index = (rng.integers(0, len(t), len(t)) if self.bootstrap and self.ensemble_size > 1
                     else np.arange(len(t)))
            model = XGBRegressor(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                 learning_rate=self.learning_rate, subsample=self.subsample,
                                 colsample_bytree=self.colsample_bytree, min_child_weight=self.min_child_weight,
                                 tree_method="hist", random_state=int(rng.integers(2**31 - 1)),
                                 n_jobs=self.n_jobs, objective=self.objective, **extra)
            model.fit(x[index], t[index])
            self.models_.append(model)
        self.n_train_ = len(t)
        self.target_range_ = (float(y.min()), float(y.max()))
        return self

    def _member_predictions(self, archs: Sequence[str | Arch]) -> np.ndarray:
        if not hasattr(self, "models_"):
            raise PredictorError("predictor is not fitted")
        x = self.featurizer_.transform(list(archs))
        if len(x) == 0:
            return np.zeros((len(self.models_), 0))
        return np.stack([self._from_target(m.predict(x).astype(float)) for m in self.models_])

    def predict_dist(self, archs: Sequence[str | Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over the ensemble, in the target's units (scores for a ranker)."""
        members = self._member_predictions(archs)
        return members.mean(axis=0), members.std(axis=0)

    def predict(self, archs: Sequence[str | Arch]) -> np.ndarray:
        """Mean prediction over the ensemble."""
        return self.predict_dist(archs)[0]

    # -- persistence -----------------------------------------------------------------------------------------
    def meta(self, *, scores: Mapping[str, Any] | None = None, source: Mapping[str, Any] | None = None) -> dict:
        return {
            "schema_version": SCHEMA_VERSION, "kind": self.kind, "space": self.space,
            "space_options": dict(self.space_options or {}), "input_shape": list(self.input_shape),
            "num_classes": int(self.num_classes), "features": list(self.featurizer_.feature_names_),
            "feature_schema": self.featurizer_.schema, "n_train": int(self.n_train_),
            "target_range": list(self.target_range_), "log_target": self.log_target,
            "params": self.get_params(), "models": [f"model_{i}.json" for i in range(len(self.models_))],
            "target_map": [a.tolist() for a in self.target_map_] if self._quantile else None,
            "scores": dict(scores or {}), "source": dict(source or {}), "hwnas_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def save(self, directory: str | os.PathLike, *, scores: Mapping[str, Any] | None = None,
             source: Mapping[str, Any] | None = None) -> Path:
        """Writes the models (XGBoost JSON) and ``meta.json`` into ``directory``, replacing it atomically.

        Args:
            directory: The predictor's folder, e.g. ``predictors/<name>``.
            scores: Validation scores to record.
            source: Where the training data came from (device fingerprint or data set).
        """
        if not hasattr(self, "models_"):
            raise PredictorError("predictor is not fitted")

        def write(staging: Path) -> None:
            for i, model in enumerate(self.models_):
                # XGBoost's own save_model does not check every write (a full disk can leave a truncated file
                # without an error): the JSON is serialised in memory and written by Python, which checks.
                atomic_write_bytes(staging / f"model_{i}.json", bytes(model.get_booster().save_raw("json")))
            atomic_write_json(staging / META_FILE, self.meta(scores=scores, source=source))

        return save_folder(directory, write)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, space: str | None = None,
             input_shape: Sequence[int] | None = None) -> "XGBPredictor":
        """Loads a saved predictor; rejects one of another kind, space, input shape or feature schema.

        Args:
            directory: The predictor's folder.
            space: Expected space name (None: any).
            input_shape: Expected input shape (None: any).
        """
        from xgboost import XGBRegressor

        meta = read_meta(directory)
        other = ALGORITHMS.get(meta.get("algorithm", "xgboost"))
        if other is not None and cls in (XGBPredictor, PREDICTORS.get(meta["kind"])):
            return other.load(directory, space=space, input_shape=input_shape)
        predictor_cls = PREDICTORS.get(meta["kind"]) if cls is XGBPredictor else cls
        if meta["kind"] != predictor_cls.kind:
            raise PredictorError(f"{directory} holds a {meta['kind']} predictor, not a {predictor_cls.kind} one")
        check_task(directory, meta, space=space, input_shape=input_shape)
        # An edited kind or input shape would be used as is, silently wrong: they must agree with what the
        # models were fit on (the target's transform and the featuriser's shape).
        if meta.get("log_target") != predictor_cls.log_target:
            raise PredictorError(f"{directory}/meta.json is inconsistent: a {meta['kind']} predictor's models are "
                                 f"fit on {'log-' if predictor_cls.log_target else ''}targets, its log_target says "
                                 f"{meta.get('log_target')!r}; refit it")
        if list(meta["params"].get("input_shape") or meta["input_shape"]) != list(meta["input_shape"]):
            raise PredictorError(f"{directory}/meta.json is inconsistent: input_shape {meta['input_shape']} but "
                                 f"the models were fit for {meta['params']['input_shape']}; refit it")
        params = {k: v for k, v in meta["params"].items() if k in predictor_cls._PARAMS}
        predictor = predictor_cls(**params)
        featurizer = predictor.make_featurizer()
        if featurizer.feature_names_ != meta["features"]:
            raise PredictorError(f"{directory} was fit with a different feature schema "
                                 f"({meta['feature_schema']} vs {featurizer.schema} now); refit it")
        predictor.featurizer_ = featurizer
        predictor.models_ = []
        for name in meta["models"]:
            model = XGBRegressor()
            path = Path(directory) / name
            if path.is_symlink() or not path.is_file():  # a predictor's files are its own, never a link elsewhere
                raise PredictorError(f"cannot load {path}: not a regular file of the predictor; refit it")
            try:
                model.load_model(str(path))
            except Exception:  # XGBoost's message quotes the file's bytes: never echo them
                raise PredictorError(f"cannot load {path}: not an XGBoost model file (corrupt or replaced); "
                                     f"refit it") from None
            predictor.models_.append(model)
        if predictor._quantile:
            target_map = meta.get("target_map")
            if not (isinstance(target_map, list) and len(target_map) == 2 and len(target_map[0]) >= 1
                    and len(target_map[0]) == len(target_map[1])):
                raise PredictorError(f"{directory}: meta.json lacks a valid target_map; refit it")
            predictor.target_map_ = tuple(np.asarray(a, dtype=float) for a in target_map)
        predictor.n_train_ = int(meta["n_train"])
        predictor.target_range_ = tuple(meta["target_range"])
        predictor.meta_ = meta
        return predictor


_SHARED_FEATURIZERS: dict[tuple, ArchFeaturizer] = {}
#: Tasks whose featurizers a process keeps (the least recently used beyond that is dropped).
SHARED_FEATURIZERS = 4


def shared_featurizer(predictor: "XGBPredictor") -> ArchFeaturizer:
    """One featurizer per task for the whole process: features are a pure function of the architecture and the
    task, so every round of a search, and every search of a benchmark, reuses the rows and unit statistics
    computed once (on NAS-Bench-201 a run's featurisation was ~9 s of ~40 s before)."""
    task = predictor.task
    featurizer = _SHARED_FEATURIZERS.pop(task, None)
    if featurizer is None:
        featurizer = predictor.make_featurizer()
    _SHARED_FEATURIZERS[task] = featurizer  # most recently used last
    while len(_SHARED_FEATURIZERS) > SHARED_FEATURIZERS:
        _SHARED_FEATURIZERS.pop(next(iter(_SHARED_FEATURIZERS)))
    return featurizer


def read_meta(directory: str | os.PathLike) -> dict:
    """The ``meta.json`` of a saved predictor, validated; :class:`PredictorError` naming the file otherwise."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise PredictorError(f"no predictor at {directory} ({path} not found)")
    meta = read_json_object(path, error=PredictorError, what="predictor metadata")
    required = ("schema_version", "kind", "space", "input_shape", "features", "params", "models", "n_train")
    missing = [key for key in required if key not in meta]
    if missing:
        raise PredictorError(f"{path} is corrupt: missing {', '.join(missing)}")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise PredictorError(f"{path} has schema version {meta['schema_version']}; this hwnas reads "
                             f"{SCHEMA_VERSION}")
    if meta["kind"] not in PREDICTORS:
        raise PredictorError(f"{path}: unknown predictor kind {meta['kind']!r}")
    models = meta["models"]
    algorithm = meta.get("algorithm", "xgboost")
    if algorithm == "transfer":  # its files are fixed names (hwnas.predictors.transfer), never paths
        _check_transfer_meta(path, meta)
    elif algorithm == "additive":  # its coefficients are in meta.json (checked on load)
        if meta["kind"] != "latency" or not isinstance(meta.get("coef"), list):
            raise PredictorError(f"{path} is corrupt: an additive predictor predicts latency from 'coef'")
    elif algorithm != "xgboost":
        raise PredictorError(f"{path}: unknown predictor algorithm {algorithm!r}")
    # Every file named in meta.json must be a model file inside this folder: never a path to elsewhere.
    elif not (isinstance(models, list) and models and all(isinstance(m, str) and _MODEL_FILE_RE.match(m)
                                                             for m in models)):
        raise PredictorError(f"{path} is corrupt: 'models' must list files named model_<n>.json in its folder")
    shape = meta["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 1_000_000 for d in shape)):
        raise PredictorError(f"{path} is corrupt: input_shape must be three positive whole numbers")
    if not isinstance(meta["n_train"], int) or not isinstance(meta["params"], dict) \
            or not isinstance(meta["features"], list):
        raise PredictorError(f"{path} is corrupt: n_train, params or features has the wrong type")
    return meta


def _check_transfer_meta(path: Path, meta: dict) -> None:
    """A transfer predictor's meta.json: a latency predictor with a list of sources and one coefficient each."""
    sources, coef = meta.get("sources"), meta.get("coef")
    if meta["kind"] != "latency":
        raise PredictorError(f"{path} is corrupt: a transfer predictor predicts latency, not {meta['kind']!r}")
    if not (isinstance(sources, list) and sources and all(isinstance(s, dict) and isinstance(s.get("name"), str)
                                                           for s in sources)):
        raise PredictorError(f"{path} is corrupt: 'sources' must list the source devices")
    numbers = [meta.get("intercept"), meta.get("alpha"), meta.get("rmse_log")]
    if not (isinstance(coef, list) and len(coef) == len(sources)
            and all(finite_number(c) for c in coef + numbers)):
        raise PredictorError(f"{path} is corrupt: 'coef', 'intercept', 'alpha' or 'rmse_log' is not a number "
                             f"per source")


def _interp_extrapolate(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp``, but continued linearly beyond the ends (with the slope of the outermost few points), so
    that predictions past the training set's best or worst stay ordered instead of tying."""
    y = np.interp(x, xp, fp)
    if len(xp) < 2:
        return y
    k = min(5, len(xp) - 1)
    low, high = x < xp[0], x > xp[-1]
    y[low] = fp[0] + (x[low] - xp[0]) * (fp[k] - fp[0]) / (xp[k] - xp[0])
    y[high] = fp[-1] + (x[high] - xp[-1]) * (fp[-1] - fp[-1 - k]) / (xp[-1] - xp[-1 - k])
    return y


def _replace_dir(staging: Path, target: Path) -> None:
    """Puts ``staging`` in place of ``target``; the old folder is removed only once the new one is there.

    Raises:
        PredictorError: ``target`` exists and is not a predictor folder (nothing else is ever replaced).
    """
    backup = None
    if target.exists() or target.is_symlink():
        if target.is_symlink() or not target.is_dir() or not (target / META_FILE).is_file():
            raise PredictorError(f"{target} exists and is not a predictor folder: it is left alone; choose "
                                 f"another name")
        backup = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, backup)
    os.replace(staging, target)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


PREDICTORS: Registry[XGBPredictor] = Registry("predictor kind")
#: Saved predictors of another algorithm than these XGBoost ensembles (``meta.json``'s ``algorithm``), by name:
#: :meth:`XGBPredictor.load` hands their folders to the class registered here (``transfer``:
#: :class:`~hwnas.predictors.transfer.TransferLatencyPredictor`, registered when its module is imported).
ALGORITHMS: dict[str, Any] = {}


@PREDICTORS.register("latency")
class LatencyPredictor(XGBPredictor):
    """Latency in ms, learned on log-latency (relative error is what matters); seeds differ, data does not."""

    kind = "latency"
    log_target = True

    def __init__(self, *, n_estimators: int = 600, max_depth: int = 4, learning_rate: float = 0.05,
                 ensemble_size: int = 3, bootstrap: bool = False, **kwargs) -> None:
        super().__init__(n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate,
                         ensemble_size=ensemble_size, bootstrap=bootstrap, **kwargs)


@PREDICTORS.register("accuracy")
class AccuracyPredictor(XGBPredictor):
    """Validation accuracy; a bootstrap ensemble whose spread is the uncertainty.

    Learns the normal scores of the accuracies' ranks by default (``target="quantile"``) and maps predictions
    back to accuracies: on NAS-Bench-201 this orders the best architectures better than regressing the skewed
    accuracies directly (``benchmarks/nb201_predictors.py``). Predictions stay accuracies.
    """

    kind = "accuracy"

    def __init__(self, *, n_estimators: int = 300, max_depth: int = 3, learning_rate: float = 0.05,
                 ensemble_size: int = 8, bootstrap: bool = True, target: str = "quantile", **kwargs) -> None:
        super().__init__(n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate,
                         ensemble_size=ensemble_size, bootstrap=bootstrap, target=target, **kwargs)
