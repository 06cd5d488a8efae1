"""What a search run is asked to do: :class:`RunConfig`, a frozen, typed, versioned configuration.

One object serves the command line (``hwnas search``, ``hwnas benchmark``) and Python
(:func:`hwnas.start_search`): both build a :class:`RunConfig` and call :meth:`RunConfig.resolved`, which checks the
data set and space and records what they resolve to (input shape, classes, the data set's key) before a run
folder exists. A run folder stores it as ``config.json`` (:meth:`RunConfig.to_json`, read back with
:meth:`RunConfig.from_json`, which also reads the untyped files of hwnas 0.1's first runs).

Every default is written once, here (the loop's knobs take theirs from
:class:`~hwnas.search.state.SearchSettings`); the command line's option defaults are read from this class.
"""

from __future__ import annotations

import math
import time
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Mapping

from hwnas import __version__
from hwnas.errors import HwnasError
from hwnas.profiling.store import DEFAULT_PROFILES_DIR
from hwnas.runtimes import DEFAULT_RUNTIME
from hwnas.search.state import SearchSettings
from hwnas.training.device import DEFAULT_DEVICE, DeviceError, check_name
from hwnas.training.recipe import DEFAULT_RECIPE, Recipe, RecipeError

#: Version of ``config.json``. 1: untyped (hwnas 0.1; ``threads`` for the measurement threads);
#: 2: written from :class:`RunConfig`; 3: the same, with a ``runtime`` other than onnxruntime.
SCHEMA_VERSION = 3
#: The version a run measured in onnxruntime still writes: hwnas versions that read schema 2 resume it. A run in
#: another runtime writes 3, so that they refuse it rather than measure it in onnxruntime.
ONNXRUNTIME_SCHEMA_VERSION = 2
#: Architectures profiled when the device has no profile yet (and latency-table rows taken as the prior).
DEFAULT_PROFILE_SAMPLES = 120
ESTIMATORS = ("train", "supernet")
MODES = ("oneshot", "progressive")
#: Keys of old ``config.json`` files read under another name.
_RENAMED = {"threads": "measure_threads"}


class ConfigError(HwnasError, ValueError):
    """A run configuration setting is missing, of the wrong type or out of range."""


def _setting(name: str) -> Any:
    """The loop's own default of a setting (:class:`SearchSettings`): written once."""
    return SearchSettings.__dataclass_fields__[name].default


@dataclass(frozen=True)
class RunConfig:
    """A search run's configuration.

    Task:
        budget_ms: Latency budget in milliseconds (the only setting without a default).
        space, space_options: The search space (``mobilenet``, ``nb201``) and its options.
        dataset: A registered data set, an image folder or a ``.npz`` file; ``dataset_options`` its keyword
            options, ``dataset_input_shape`` the CxHxW an image folder is converted to.
        recipe: The training recipe of every search training (:class:`~hwnas.training.recipe.Recipe`).

    Latency:
        device: The device profile under ``profiles_dir`` (``host``: this machine, profiled when needed).
        latency_table: A CSV of ``arch,latency_ms`` replacing the device (device ``table-<stem>``).
        measure_threads: The runtime's threads in latency measurements (``--measure-threads``, alias
            ``--threads``); ``runtime`` (``--runtime``: onnxruntime, openvino, ...), ``provider``, ``batch_size``
            and ``precision`` complete the conditions. A runtime other than onnxruntime has its own profile,
            ``<device>.<runtime>``.
        profile_samples: Architectures profiled when the device has no profile yet.
        transfer, transfer_from: Whether the latency predictor transfers from other device profiles of the same
            task (:mod:`hwnas.predictors.transfer`), and from which (None: every compatible one under
            ``profiles_dir``). ``transfer_sources``: the profiles it used, recorded when the run starts with
            ``transfer_source_records``, how many of each one's records of the task it read (a resume reads the
            same first records of the same profiles: they are append-only). Runs made before transfer existed
            read as ``transfer=False``.

    Search:
        controller, reward, mode, acquisition: Registered names (see ``hwnas search --help``).
        max_trainings, max_measurements, time_budget_s: The run's budgets (``None``: 20 measurements per
            training; no time limit).
        seed: Seed of the loop, the controller and the trainings.
        initial_trainings, candidates_per_round, archs_per_round, explore, local_search_steps,
        skip_equivalent, explore_per_round, explore_by: The loop's knobs
            (:class:`~hwnas.search.state.SearchSettings`).
        final_seeds, finalists: The finals (:mod:`hwnas.search.finals`): extra training seeds for each of the
            ``finalists`` best trained architectures before the search ends (None: 2 where the run trains, 0
            with an accuracy table).

    Accuracy:
        store: The evaluation store (None: ``$HWNAS_STORE`` or ``./evals.sqlite``).
        train_threads: PyTorch threads per training.
        train_device: Where trainings run: ``auto`` (the GPU Ray assigned, else CUDA if present, else the CPU),
            ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (:mod:`hwnas.training.device`). Runs made before it
            existed read as ``cpu``.
        loader_workers: DataLoader workers of a streamed data set (None: up to 4; 0: read in the training's
            own process).
        trained_on: The kind of device (``cpu``, ``cuda``, ``mps``) the run's first session trained on, recorded
            then: a resume that would train on another kind is refused (its results are keyed apart).
        accuracy_table: A CSV of ``arch,accuracy`` replacing the trainings.
        accuracy_function: The name of a Python accuracy function (:func:`hwnas.start_search`'s ``accuracy_fn``)
            replacing the trainings; recorded so that a resume without it is refused.
        estimator, supernet, supernet_*, initial_estimates, estimates_per_round: ``--estimator supernet``.
        predictor_options: Keyword options of the predictors.

    Resolved (:meth:`resolved` fills them from the data set): ``dataset_name``, ``dataset_key``,
    ``input_shape``, ``num_classes``, ``class_names``, ``created``.
    """

    budget_ms: float
    space: str = "mobilenet"
    space_options: Mapping[str, Any] = field(default_factory=dict)
    dataset: str = "digits"
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    dataset_input_shape: tuple[int, int, int] | None = None
    recipe: Recipe = DEFAULT_RECIPE
    device: str = "host"
    profiles_dir: str = str(DEFAULT_PROFILES_DIR)
    latency_table: str | None = None
    measure_threads: int = 1
    provider: str = "cpu"
    runtime: str = DEFAULT_RUNTIME
    batch_size: int = 1
    precision: str = "fp32"
    profile_samples: int = DEFAULT_PROFILE_SAMPLES
    controller: str = "ppo"
    reward: str = "hard"
    mode: str = "oneshot"
    acquisition: str = _setting("acquisition")
    max_trainings: int = _setting("max_trainings")
    max_measurements: int | None = None
    time_budget_s: float | None = None
    seed: int = 0
    initial_trainings: int = _setting("initial_trainings")
    candidates_per_round: int = _setting("candidates_per_round")
    archs_per_round: int = _setting("archs_per_round")
    explore: float = _setting("explore")
    local_search_steps: int = _setting("local_search_steps")
    skip_equivalent: bool = _setting("skip_equivalent")
    explore_per_round: int = _setting("explore_per_round")
    explore_by: str = _setting("explore_by")
    final_seeds: int | None = _setting("final_seeds")
    finalists: int = _setting("finalists")
    store: str | None = None
    train_threads: int = 1
    train_device: str = DEFAULT_DEVICE
    loader_workers: int | None = None
    trained_on: str | None = None
    accuracy_table: str | None = None
    accuracy_function: str | None = None
    estimator: str = "train"
    supernet: str | None = None
    supernet_epochs: int = 60
    supernet_sampling: str = "uniform"
    supernet_threads: int | None = None
    initial_estimates: int = _setting("initial_estimates")
    estimates_per_round: int = _setting("estimates_per_round")
    predictor_options: Mapping[str, Any] = field(default_factory=dict)
    transfer: bool = True
    transfer_from: tuple[str, ...] | None = None
    transfer_sources: tuple[str, ...] | None = None
    transfer_source_records: Mapping[str, int] | None = None
    dataset_name: str | None = None
    dataset_key: str | None = None
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    created: str | None = None
    hwnas_version: str = __version__

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.recipe, Mapping):
            try:
                set_(self, "recipe", Recipe.from_dict(dict(self.recipe)))
            except (RecipeError, TypeError) as exc:
                raise ConfigError(f"recipe: {exc}") from None
        elif not isinstance(self.recipe, Recipe):
            raise ConfigError(f"recipe must be a Recipe, got {self.recipe!r}")
        for name in ("space_options", "dataset_options", "predictor_options"):
            value = getattr(self, name)
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name} must be a mapping of options, got {value!r}")
            set_(self, name, dict(value))
        for name in ("dataset_input_shape", "input_shape"):
            value = getattr(self, name)
            if value is not None:
                if not (isinstance(value, (list, tuple)) and len(value) == 3
                        and all(_whole(d) and d > 0 for d in value)):
                    raise ConfigError(f"{name} must be three positive whole numbers, got {value!r}")
                set_(self, name, tuple(int(d) for d in value))
        if self.class_names is not None:
            set_(self, "class_names", tuple(str(c) for c in self.class_names))
        if not isinstance(self.transfer, bool):
            raise ConfigError(f"transfer must be true or false, got {self.transfer!r}")
        for name in ("transfer_from", "transfer_sources"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, str) or not isinstance(value, (list, tuple)) \
                        or not all(isinstance(v, str) and v for v in value):
                    raise ConfigError(f"{name} must be a list of profile names, got {value!r}")
                set_(self, name, tuple(value))
        counts = self.transfer_source_records
        if counts is not None:
            if not (isinstance(counts, Mapping) and all(isinstance(k, str) and _whole(v) and v >= 0
                                                       for k, v in counts.items())):
                raise ConfigError(f"transfer_source_records must map profile names to record counts, got {counts!r}")
            set_(self, "transfer_source_records", dict(counts))
        if self.transfer_from is not None and not self.transfer:
            raise ConfigError("transfer_from names sources but transfer is off; give one of them")
        for name in ("space", "dataset", "device", "profiles_dir", "provider", "runtime", "precision", "controller",
                     "reward", "mode", "acquisition", "estimator", "supernet_sampling", "explore_by"):
            if not (isinstance(getattr(self, name), str) and getattr(self, name)):
                raise ConfigError(f"{name} must be text, got {getattr(self, name)!r}")
        from hwnas.search.budget import MAX_BUDGET_MS, MIN_BUDGET_MS, MAX_DURATION_S

        if not (_number(self.budget_ms, positive=True) and MIN_BUDGET_MS <= self.budget_ms <= MAX_BUDGET_MS):
            raise ConfigError(f"budget_ms must be a positive number of milliseconds, "
                              f"{MIN_BUDGET_MS:g}..{MAX_BUDGET_MS:g}, got {self.budget_ms!r}")
        set_(self, "budget_ms", float(self.budget_ms))
        for name, low in (("max_trainings", 1), ("measure_threads", 1), ("batch_size", 1), ("profile_samples", 1),
                          ("initial_trainings", 1), ("candidates_per_round", 1), ("archs_per_round", 1),
                          ("local_search_steps", 0), ("seed", 0), ("train_threads", 1), ("supernet_epochs", 1),
                          ("initial_estimates", 1), ("estimates_per_round", 0), ("explore_per_round", 0),
                          ("finalists", 1)):
            if not (_whole(getattr(self, name)) and getattr(self, name) >= low):
                raise ConfigError(f"{name} must be a whole number of at least {low}, got {getattr(self, name)!r}")
        try:
            set_(self, "train_device", check_name(self.train_device))
        except DeviceError as exc:
            raise ConfigError(str(exc)) from None
        if self.loader_workers is not None and not (_whole(self.loader_workers) and self.loader_workers >= 0):
            raise ConfigError(f"loader_workers must be a whole number of at least 0, got {self.loader_workers!r}")
        for name in ("max_measurements", "num_classes", "supernet_threads"):
            value = getattr(self, name)
            if value is not None and not (_whole(value) and value >= 1):
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if self.time_budget_s is not None and not (_number(self.time_budget_s, positive=True)
                                                   and self.time_budget_s <= MAX_DURATION_S):
            raise ConfigError(f"time_budget_s must be a positive number of seconds, at most a year "
                              f"({MAX_DURATION_S:.0f}), got {self.time_budget_s!r}")
        if not (_number(self.explore) and self.explore >= 0):
            raise ConfigError(f"explore must be a number of at least 0, got {self.explore!r}")
        if self.final_seeds is not None and not (_whole(self.final_seeds) and self.final_seeds >= 0):
            raise ConfigError(f"final_seeds must be a whole number of at least 0, got {self.final_seeds!r}")
        from hwnas.search.acquisition import EXPLORATIONS

        self._check_names()
        if self.explore_by not in EXPLORATIONS:
            raise ConfigError(f"explore_by must be one of {', '.join(EXPLORATIONS.names())}, got {self.explore_by!r}")
        if not isinstance(self.skip_equivalent, bool):
            raise ConfigError(f"skip_equivalent must be true or false, got {self.skip_equivalent!r}")
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("latency_table", "accuracy_table", "store", "supernet", "accuracy_function"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, str(value))
        set_(self, "profiles_dir", str(self.profiles_dir))

    def _check_names(self) -> None:
        """Refuses a space, controller, reward, acquisition or runtime that is not registered (at construction:
        ``RunConfig(controller="ppo2")`` fails at once, naming the known ones)."""
        from hwnas.runtimes import RUNTIMES
        from hwnas.search.acquisition import ACQUISITIONS
        from hwnas.search.controllers import CONTROLLERS
        from hwnas.search.reward import REWARDS
        from hwnas.spaces import SPACES

        for what, registry, name in (("space", SPACES, self.space), ("controller", CONTROLLERS, self.controller),
                                     ("reward", REWARDS, self.reward), ("acquisition", ACQUISITIONS, self.acquisition),
                                     ("runtime", RUNTIMES, self.runtime)):
            if name not in registry:
                raise ConfigError(f"unknown {what} {name!r} (known: {', '.join(registry.names())})")

    # -- building --------------------------------------------------------------------------------------------
    @classmethod
    def default(cls, name: str) -> Any:
        """The default of setting ``name`` (the command line's option defaults read it here)."""
        spec = cls.__dataclass_fields__[name]
        if spec.default is MISSING and spec.default_factory is not MISSING:
            return spec.default_factory()
        return spec.default

    def resolved(self) -> "RunConfig":
        """This configuration checked and completed for a new run: the space is built (its options
        checked), the controller, reward and acquisition are registered names, the data set is resolved (a
        folder or file made absolute; its name, key, input shape, classes recorded), a latency table names
        the device ``table-<stem>``, a supernet is finished and its path absolute.

        Raises:
            HwnasError: any of these is wrong (one line, before any run folder exists).
        """
        from pathlib import Path

        from hwnas.data.resolve import short_name

        self.create_space()  # its options checked
        changes: dict[str, Any] = {}
        if self.latency_table is not None:
            changes["latency_table"] = str(Path(self.latency_table).expanduser().resolve())
            table_device = f"table-{Path(self.latency_table).stem}"
            if self.device not in (self.default("device"), table_device):
                raise ConfigError("a device and a latency table both give the latency; use one")
            changes["device"] = table_device
        if self.accuracy_table is not None:
            changes["accuracy_table"] = str(Path(self.accuracy_table).expanduser().resolve())
        if self.supernet is not None or self.estimator == "supernet":
            if self.accuracy_table is not None or self.accuracy_function is not None:
                raise ConfigError("--estimator supernet needs trainings, not an accuracy table or function")
            changes["estimator"] = "supernet"
            if self.supernet is not None:
                from hwnas.supernet.folder import SupernetFolder

                SupernetFolder(self.supernet).finished_meta()
                changes["supernet"] = str(Path(self.supernet).resolve())
        spec = self.dataset_spec().absolute()
        ds = spec.resolve()
        changes.update(dataset=spec.spec, dataset_name=short_name(ds), dataset_key=ds.key,
                       input_shape=tuple(ds.input_shape), num_classes=int(ds.num_classes),
                       class_names=tuple(ds.class_names) if ds.class_names else None,
                       created=self.created or time.strftime("%Y-%m-%dT%H:%M:%S%z"), hwnas_version=__version__)
        return replace(self, **changes)

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with ``changes`` (checked like a new one)."""
        return replace(self, **changes)

    # -- views -----------------------------------------------------------------------------------------------
    def settings(self) -> SearchSettings:
        """The loop's settings."""
        return SearchSettings(budget_ms=self.budget_ms, max_trainings=self.max_trainings,
                              max_measurements=self.max_measurements, time_budget_s=self.time_budget_s,
                              acquisition=self.acquisition, num_classes=self.num_classes,
                              initial_trainings=self.initial_trainings,
                              candidates_per_round=self.candidates_per_round, archs_per_round=self.archs_per_round,
                              explore=self.explore, local_search_steps=self.local_search_steps,
                              initial_estimates=self.initial_estimates, estimates_per_round=self.estimates_per_round,
                              skip_equivalent=self.skip_equivalent, seed=self.seed,
                              explore_per_round=self.explore_per_round, explore_by=self.explore_by,
                              final_seeds=self.final_seeds, finalists=self.finalists)

    def check_train_device(self, *, ray_gpus: float = 0.0, on_ray: bool = False) -> str | None:
        """Refuses, before any work, a training device this run cannot train on (one line), and says which
        kind of device its trainings run on (``cpu``, ``cuda``, ``mps``; None without trainings).

        With Ray GPUs (``--gpus-per-training``) each training runs on the GPU Ray assigns it (checked where it
        runs): the device must be ``auto`` or ``cuda``. On Ray without GPUs trainings run on the CPU of whichever
        node takes them: ``auto`` means ``cpu`` there, and a GPU device is refused (Ray would not share it out).

        Raises:
            HwnasError: the device is unusable here, or does not go with the execution.
        """
        from hwnas.training.device import resolve
        from hwnas.training.trainer import check_amp

        if self.accuracy_table is not None or self.accuracy_function is not None:
            return None
        name = self.train_device
        if ray_gpus > 0:
            if name not in ("auto", "cuda"):
                raise ConfigError(f"--gpus-per-training gives each training the GPU Ray assigns it: use "
                                  f"--train-device auto or cuda, not {name}")
            kind = "cuda"
        elif on_ray:
            if name not in ("auto", "cpu"):
                raise ConfigError(f"--train-device {name} on Ray needs --gpus-per-training (Ray hands each training "
                                  f"its GPU); without it trainings run on the CPU")
            kind = "cpu"
        else:
            kind = resolve(name).type
        import torch

        check_amp(self.recipe, torch.device(kind))
        return kind

    def check_execution(self, *, ray_address=None, workers: int = 1, gpus_per_training: float = 0.0) -> None:
        """:meth:`check_train_device` for the execution of ``--ray [ADDRESS]``, ``--workers N`` and
        ``--gpus-per-training`` (the command line's and :func:`hwnas.start_search`'s)."""
        from hwnas.cluster import uses_ray

        self.check_train_device(ray_gpus=gpus_per_training, on_ray=uses_ray(
            ray_address, workers=workers, gpus_per_task=gpus_per_training))

    def execution_device(self, *, ray_gpus: float = 0.0, on_ray: bool = False) -> str:
        """The device name each training is handed: ``cpu`` for ``auto`` on Ray without GPUs (whatever a node
        has), else the run's own."""
        return "cpu" if on_ray and ray_gpus <= 0 and self.train_device == "auto" else self.train_device

    def conditions(self):
        """The latency measurement conditions (a :class:`~hwnas.profiling.measure.Conditions`)."""
        from hwnas.profiling.measure import Conditions

        return Conditions(provider=self.provider, threads=self.measure_threads, batch_size=self.batch_size,
                          precision=self.precision, runtime=self.runtime)

    def dataset_spec(self):
        """The data set as a :class:`~hwnas.data.resolve.DatasetSpec`."""
        from hwnas.data.resolve import DatasetSpec

        return DatasetSpec(self.dataset, dict(self.dataset_options), self.dataset_input_shape)

    def create_space(self):
        """The search space, built with its options."""
        from hwnas.spaces import create_space

        return create_space(self.space, **self.space_options)

    def run_name(self) -> str:
        """The default run folder's name, ``<space>-<data set>-<device>[-<runtime>]-<budget>-s<seed>`` (the
        runtime unless onnxruntime; the budget as hwnas prints it: ``400us``, ``2ms``): one folder name, never a
        path."""
        from hwnas.data.resolve import safe_name
        from hwnas.units import format_latency

        runtime = "" if self.runtime == DEFAULT_RUNTIME else f"-{self.runtime}"
        return safe_name(f"{self.space}-{self.dataset_name or self.dataset}-{self.device}{runtime}-"
                         f"{format_latency(self.budget_ms)}-s{self.seed}", limit=120)

    # -- JSON ------------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The ``config.json`` document (versioned; ``epochs`` repeats the recipe's for readers of old files)."""
        version = ONNXRUNTIME_SCHEMA_VERSION if self.runtime == DEFAULT_RUNTIME else SCHEMA_VERSION
        data: dict[str, Any] = {"schema_version": version}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, Recipe):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            data[spec.name] = value
        data["epochs"] = self.recipe.epochs
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunConfig":
        """Reads a ``config.json`` document (schema 1 to 3; unknown keys of a newer hwnas are refused by
        version, other unknown keys ignored).

        Raises:
            ConfigError: a missing or wrong setting (the message names it).
        """
        version = data.get("schema_version", 1)
        if not _whole(version) or version > SCHEMA_VERSION:
            raise ConfigError(f"schema_version {version!r} is newer than this hwnas reads ({SCHEMA_VERSION}): "
                              f"upgrade hwnas")
        for key in ("space", "dataset", "budget_ms", "input_shape", "num_classes"):
            if key not in data:
                raise ConfigError(f"missing {key!r}")
        known = {spec.name for spec in fields(cls)}
        values = {_RENAMED.get(k, k): v for k, v in data.items() if _RENAMED.get(k, k) in known}
        values.setdefault("train_device", "cpu")  # runs made before the setting trained on the CPU
        values.setdefault("final_seeds", 0)  # runs made before the finals end as they began: without them
        values.setdefault("transfer", False)  # runs made before transfer fit latency on their own records
        if not values.get("recipe"):  # runs made before the recipe was stored: the default at their epochs
            values["recipe"] = DEFAULT_RECIPE.with_fidelity(epochs=data["epochs"]) if data.get("epochs") \
                else DEFAULT_RECIPE
        for key in ("num_classes",):
            if not (_whole(values[key]) and values[key] > 0):
                raise ConfigError(f"{key} must be a positive whole number, got {values[key]!r}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any, *, positive: bool = False) -> bool:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (value > 0 if positive else True)
