"""What ``hwnas export`` ships: the architecture, its data, final recipe and measurement conditions.

An :class:`ExportTarget` comes either from a finished search (its run directory: the best verified
architecture under the budget, the search's recipe, device and conditions) or from an explicit
``--arch/--space/--dataset`` (which may also override a run's best). Every way this can go wrong -- no run
and no architecture, a missing or corrupt run directory, a run without a feasible architecture -- is a
:class:`DeployError` with one clear line, raised before anything is trained or written.

The final recipe is the search's recipe at full data (``data_fraction=1``) and :data:`EPOCH_FACTOR` times
its epochs (``--epochs`` overrides), trained on train+validation.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from hwnas.errors import HwnasError
from hwnas.profiling.measure import Conditions
from hwnas.training.recipe import DEFAULT_RECIPE, Recipe
from hwnas.units import format_latency

if TYPE_CHECKING:
    from hwnas.data.resolve import DatasetSpec
    from hwnas.search.result import Candidate, SearchResult, Trial

logger = logging.getLogger(__name__)

#: The final training runs this many times the search recipe's epochs unless ``--epochs`` says otherwise.
EPOCH_FACTOR = 3
DEFAULT_SPACE = "mobilenet"
DEFAULT_DATASET = "digits"
DEFAULT_DEVICE = "host"
#: What is kept of the search's verification of the exported architecture (``latency_measured`` is False
#: when the device could not measure it and the search predicted its latency).
SEARCH_KEYS = ("accuracy", "latency_ms", "latency_measured", "round")


class DeployError(HwnasError):
    """The model cannot be exported or evaluated as asked (no feasible architecture, bad run, bad path...)."""


@dataclass(frozen=True)
class ExportTarget:
    """Everything the final training, export and re-measurement need.

    Attributes:
        arch: Canonical architecture string.
        space: Space name.
        space_options: The space's constructor options.
        dataset: Data-set spec (as given to the CLI, e.g. ``"digits"``).
        recipe: The final recipe (full data, final epochs).
        search_recipe: The recipe the search trained with (None without a run).
        seed: Training seed of the final model.
        conditions: Provider, threads, batch size and precision of the run's latency measurements.
        device: Name of the device (profile) the budget refers to.
        profiles_dir: Folder of the device profiles.
        budget_ms: The run's latency budget (None without a run).
        search: What the search found for this architecture (:data:`SEARCH_KEYS`; empty when it was not
            verified by the run).
        run_dir: The run directory, when exporting from one.
        input_shape: ``(C, H, W)`` recorded by the run (None without a run).
        num_classes: Classes recorded by the run (None without a run).
        dataset_options: Keyword options of the data set (``-D``), e.g. ``{"val_fraction": 0.3}``.
        dataset_input_shape: The shape an image folder's images are converted to (None: its default).
    """

    arch: str
    space: str
    space_options: dict[str, Any]
    dataset: str
    recipe: Recipe
    search_recipe: Recipe | None
    seed: int
    conditions: Conditions
    device: str
    profiles_dir: str
    budget_ms: float | None = None
    search: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    dataset_input_shape: tuple[int, int, int] | None = None

    def dataset_spec(self):
        """The data set as a :class:`~hwnas.data.resolve.DatasetSpec`."""
        from hwnas.data.resolve import DatasetSpec

        return DatasetSpec(self.dataset, dict(self.dataset_options), self.dataset_input_shape)

    def in_runtime(self, runtime: str | None) -> "ExportTarget":
        """This target measured and shipped in ``runtime`` (None: its own). A run's target stays in the run's
        runtime, whose latencies and budget it has.

        Raises:
            DeployError: another runtime than the run's.
        """
        import dataclasses

        if runtime is None or runtime == self.conditions.runtime:
            return self
        if self.run_dir:
            raise DeployError(f"the run searched with runtime {self.conditions.runtime}: its latencies and budget are "
                              f"that runtime's; export it with --runtime {self.conditions.runtime} (or search again "
                              f"with --runtime {runtime})")
        return dataclasses.replace(self, conditions=dataclasses.replace(self.conditions, runtime=runtime))


def final_recipe(search_recipe: Recipe, epochs: int | None = None) -> Recipe:
    """The search's recipe at full data with ``epochs`` (default :data:`EPOCH_FACTOR` x the search's)."""
    final_epochs = EPOCH_FACTOR * search_recipe.epochs if epochs is None else int(epochs)
    if final_epochs < 1:
        raise DeployError(f"--epochs must be at least 1, got {final_epochs}")
    return search_recipe.with_fidelity(epochs=final_epochs, data_fraction=1.0)


def resolve_target(run_dir: str | os.PathLike | None, *, arch: str | None = None, space: str | None = None,
                   space_options: Mapping[str, Any] | None = None, dataset: str | DatasetSpec | None = None,
                   epochs: int | None = None, seed: int | None = None,
                   profiles_dir: str | None = None) -> ExportTarget:
    """The export target of a run directory and/or an explicit architecture.

    Args:
        run_dir: A finished search's run directory, or None with ``arch``.
        arch: Export this architecture instead of the run's best.
        space: Its space (default: the run's, else ``mobilenet``); only with ``arch``.
        space_options: The space's options (default: the run's); only with ``arch``.
        dataset: Data-set spec or :class:`~hwnas.data.resolve.DatasetSpec` with options (default: the
            run's, else ``digits``); only with ``arch``.
        epochs: Final epochs (default :data:`EPOCH_FACTOR` x the search's).
        seed: Training seed (default: the run's seed, else 0).
        profiles_dir: Profiles folder (default: the run's, else ``profiles``).

    Raises:
        DeployError: neither a run nor an architecture, ``--space``/``--dataset`` without ``--arch``, a
            missing or corrupt run directory, or a run without a feasible architecture.
    """
    if run_dir is None and arch is None:
        raise DeployError("give a run directory (hwnas export RUN_DIR -o model.onnx) or an architecture "
                          "(--arch ARCH --space S --dataset D)")
    if arch is None and (space is not None or dataset is not None or space_options):
        raise DeployError("--space, --space-option and --dataset apply only with --arch (a run's best "
                          "architecture is exported with the run's space and data set)")
    from hwnas.data.resolve import DatasetSpec

    if dataset is not None:
        dataset = (dataset if isinstance(dataset, DatasetSpec) else DatasetSpec(str(dataset))).absolute()
    if run_dir is None:
        return _explicit_target(arch, space=space, space_options=space_options, dataset=dataset,
                                epochs=epochs, seed=seed, profiles_dir=profiles_dir)
    return _run_target(Path(run_dir), arch=arch, space=space, space_options=space_options, dataset=dataset,
                       epochs=epochs, seed=seed, profiles_dir=profiles_dir)


def _explicit_target(arch, *, space, space_options, dataset, epochs, seed, profiles_dir) -> ExportTarget:
    from hwnas.profiling.store import DEFAULT_PROFILES_DIR

    return ExportTarget(arch=arch, space=space or DEFAULT_SPACE, space_options=dict(space_options or {}),
                        dataset=dataset.spec if dataset else DEFAULT_DATASET,
                        dataset_options=dict(dataset.options) if dataset else {},
                        dataset_input_shape=dataset.input_shape if dataset else None,
                        recipe=final_recipe(DEFAULT_RECIPE, epochs),
                        search_recipe=None, seed=0 if seed is None else int(seed), conditions=Conditions(),
                        device=DEFAULT_DEVICE, profiles_dir=str(profiles_dir or DEFAULT_PROFILES_DIR))


def _run_target(path: Path, *, arch, space, space_options, dataset, epochs, seed,
                profiles_dir) -> ExportTarget:
    from hwnas.search.rundir import RunDir, RunDirError

    try:
        run = RunDir.open(path)
    except RunDirError as exc:
        raise DeployError(str(exc)) from None
    config = run.config
    search_recipe, budget_ms, run_space, run_data = (config.recipe, config.budget_ms, config.space,
                                                     config.dataset_spec())
    search: dict[str, Any] = {}
    if arch is None:
        result = _read_result(run, path)
        if result.best is None:
            raise DeployError(_infeasible_message(path, result, budget_ms))
        arch = result.best.arch
        search = _search_facts(result.best)
        budget_ms = result.budget_ms
    elif run.result_file.is_file():
        search = _verified_entry(_read_result(run, path), arch)
    run_options = dict(config.space_options) if space in (None, run_space) else {}
    same_data = dataset is None or dataset == run_data
    data = run_data if dataset is None else dataset
    return ExportTarget(
        arch=arch, space=space or run_space, space_options=dict(space_options or run_options),
        dataset=data.spec, recipe=final_recipe(search_recipe, epochs), search_recipe=search_recipe,
        seed=config.seed if seed is None else int(seed), conditions=config.conditions(), device=config.device,
        profiles_dir=str(profiles_dir or config.profiles_dir), budget_ms=budget_ms, search=search,
        run_dir=str(path), input_shape=config.input_shape if same_data else None,
        num_classes=config.num_classes if same_data else None,
        dataset_options=dict(data.options), dataset_input_shape=data.input_shape)


def _read_result(run, path: Path) -> SearchResult:
    from hwnas.search.rundir import RunDirError

    if not run.result_file.is_file():
        raise DeployError(f"{path} has no search result yet ({run.result_file.name} is missing: the search "
                          f"has not finished); resume the search, or export an architecture with --arch")
    try:
        return run.load_result()
    except RunDirError as exc:
        raise DeployError(str(exc)) from None


def _search_facts(found: Trial | Candidate) -> dict[str, Any]:
    """What the search recorded of an architecture, as the export's metadata keeps it (:data:`SEARCH_KEYS`)."""
    return {k: getattr(found, k) for k in SEARCH_KEYS if getattr(found, k, None) is not None}


def _verified_entry(result: SearchResult, arch: str) -> dict[str, Any]:
    """What the run verified for ``arch`` (a trial, or one of the closest), if anything."""
    for found in [*result.trials, *([result.best] if result.best else []), *result.pareto_front, *result.closest]:
        if found.arch == arch:
            return _search_facts(found)
    return {}


def _infeasible_message(path: Path, result: SearchResult, budget_ms: float | None) -> str:
    budget = format_latency(budget_ms) if budget_ms is not None else "its budget"
    hint = ""
    if result.closest:
        c = result.closest[0]
        hint = f" (the fastest verified one, {c.arch}, runs in {format_latency(c.latency_ms)})"
    return (f"the search in {path} found no architecture within {budget}{hint}; nothing to export: raise the "
            f"budget and search again, or export one explicitly with --arch")


def load_dataset(spec):
    """The data set named by a CLI spec (``"digits"``, a folder, a ``.npz``) or a
    :class:`~hwnas.data.resolve.DatasetSpec` (with its options).

    Raises:
        DeployError: the spec names no usable data set (the message lists the known ones).
    """
    from hwnas.data.resolve import DatasetSpec

    if not isinstance(spec, DatasetSpec):
        spec = DatasetSpec(str(spec))
    try:
        return spec.resolve()
    except HwnasError:
        raise
    except (TypeError, ValueError) as exc:
        raise DeployError(f"data set {spec!r}: {exc}") from None
