"""Training commands: ``hwnas train``, ``hwnas datasets``, ``hwnas evals``.

The option helpers (:func:`dataset_options`, :func:`recipe_options`, :func:`store_option`) and their
resolvers are meant for every command that trains or reads evaluations (search, export).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hwnas.cli.common import (EPOCHS, INPUT_SHAPE, SEED, THREADS, FiniteFloat, make_space, parse_space_options,
                              print_json, space_options)
from hwnas.shapes import format_input_shape

DEFAULT_DATASET = "digits"


# -- reusable options ----------------------------------------------------------------------------------------
def dataset_options(func):
    """Adds ``--dataset SPEC``, ``--dataset-option KEY=VALUE`` (``-D``) and ``--input-shape CxHxW``."""
    func = click.option("--input-shape", type=INPUT_SHAPE,
                        help="Image folders only: the CxHxW images are converted to (C 1 = grayscale, "
                             "3 = RGB) [default: 3x32x32].")(func)
    func = click.option("--dataset-option", "-D", "dataset_option", multiple=True, metavar="KEY=VALUE",
                        help="Keyword argument of the data set, e.g. -D val_fraction=0.3 or "
                             "-D noise=0.")(func)
    func = click.option("--dataset", "dataset_spec", default=DEFAULT_DATASET, show_default=True,
                        metavar="NAME|FOLDER|FILE.npz",
                        help="A registered data set (see 'hwnas datasets'), a folder with one sub-folder of "
                             "PNG/JPEG images per class, or a .npz file of arrays.")(func)
    return func


def make_dataset(dataset_spec: str, dataset_option: tuple[str, ...] = (), input_shape=None):
    """The data set named on the command line (via :func:`hwnas.data.resolve_dataset`)."""
    from hwnas.data import resolve_dataset

    options = parse_space_options(dataset_option) if dataset_option else {}
    return resolve_dataset(dataset_spec, input_shape=input_shape, **options)


def dataset_spec_of(dataset_spec: str, dataset_option: tuple[str, ...] = (), input_shape=None):
    """The :class:`~hwnas.data.resolve.DatasetSpec` of the command line's data-set options (a path made
    absolute, so that a run resumes from any folder)."""
    from hwnas.data.resolve import DatasetSpec

    options = parse_space_options(dataset_option) if dataset_option else {}
    return DatasetSpec(dataset_spec, options, tuple(input_shape) if input_shape else None).absolute()


def recipe_options(func):
    """Adds ``--epochs``, ``--data-fraction`` and ``--recipe-option KEY=VALUE`` (``-R``)."""
    func = click.option("--recipe-option", "-R", "recipe_option", multiple=True, metavar="KEY=VALUE",
                        help="Any other recipe setting, e.g. -R lr=0.02 -R optimizer=sgd (see README).")(func)
    func = click.option("--data-fraction", type=FiniteFloat(0, 1, min_open=True),
                        help="Fidelity: share of the training split used [default: 1].")(func)
    func = click.option("--epochs", type=EPOCHS, help="Fidelity: training epochs "
                        "[default: the recipe's].")(func)
    return func


def make_recipe(epochs: int | None = None, data_fraction: float | None = None,
                recipe_option: tuple[str, ...] = ()):
    """The default recipe with the command line's settings applied."""
    from hwnas.training import Recipe

    settings: dict[str, Any] = parse_space_options(recipe_option) if recipe_option else {}
    if epochs is not None:
        settings["epochs"] = epochs
    if data_fraction is not None:
        settings["data_fraction"] = data_fraction
    return Recipe.from_dict(settings)


#: The help of every ``--train-threads`` option (one default everywhere).
THREADS_HELP = "PyTorch threads of each training [default: 1, in every command]"


def device_options(func):
    """Adds ``--train-device`` and ``--loader-workers`` (where trainings run and how streamed data is read)."""
    from hwnas.training.device import DEFAULT_DEVICE

    func = click.option("--loader-workers", type=click.IntRange(min=0),
                        help="DataLoader worker processes reading a streamed data set (a large image folder, .npy "
                             "arrays, CIFAR with -D stream=true) [default: up to 4; 0: in the training's own "
                             "process]. In-memory data sets use none.")(func)
    func = click.option("--train-device", default=DEFAULT_DEVICE, show_default=True,
                        metavar="auto|cpu|cuda|cuda:N|mps",
                        help="Where trainings run: auto is the GPU Ray assigned, else CUDA if present, else the "
                             "CPU. Checked before any work starts.")(func)
    return func


def store_option(func):
    """Adds ``--store PATH`` (default ``$HWNAS_STORE`` or ``./evals.sqlite``)."""
    return click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
                        help="Evaluation store (SQLite) [default: $HWNAS_STORE or ./evals.sqlite].")(func)


def open_store(store_path: Path | None, *, must_exist: bool = False):
    from hwnas.training import EvalStore, StoreError, default_store_path

    path = store_path or default_store_path()
    if must_exist and not path.exists():
        raise StoreError(f"no evaluation store at {path} (train something first, or give --store PATH)")
    return EvalStore(path)


def make_evaluator(space, accuracy_table: Path | None, threads: int | None, *, train_device: str = "auto",
                   loader_workers: int | None = None):
    """A :class:`TableEvaluator` for ``--accuracy-table``, else a :class:`Trainer` (its device checked)."""
    from hwnas.training import TableEvaluator, Trainer
    from hwnas.training.trainer import training_device

    if accuracy_table is not None:
        return TableEvaluator(accuracy_table, space)
    training_device(train_device)  # usable here, before any work
    return Trainer(threads=threads, device=train_device, loader_workers=loader_workers)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


# -- hwnas train ---------------------------------------------------------------------------------------------
@click.command("train")
@click.argument("arch")
@space_options
@dataset_options
@recipe_options
@click.option("--seed", type=SEED, default=0, show_default=True, help="Training seed (init, batch order).")
@click.option("--train-threads", "--threads", "threads", type=THREADS,
              help=f"{THREADS_HELP}; --threads is its old name.")
@device_options
@store_option
@click.option("--no-store", is_flag=True, help="Neither read nor write the evaluation store.")
@click.option("--accuracy-table", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.csv",
              help="Look the accuracy up in an 'arch,accuracy' table instead of training.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def train_cmd(arch: str, space_name: str, space_option: tuple[str, ...], dataset_spec: str,
              dataset_option: tuple[str, ...], input_shape, epochs: int | None, data_fraction: float | None,
              recipe_option: tuple[str, ...], seed: int, threads: int | None, train_device: str,
              loader_workers: int | None, store_path: Path | None, no_store: bool, accuracy_table: Path | None,
              as_json: bool) -> None:
    """Train ARCH (or look it up) and print its validation accuracy, parameters and time.

    The result is stored in the evaluation store; asking again for the same architecture, data set, recipe,
    seed and fidelity prints the stored result without training.
    """
    from hwnas.training import EvalRecord, make_key

    space = make_space(space_name, space_option)
    parsed = space.parse(arch)
    recipe = make_recipe(epochs, data_fraction, recipe_option)
    evaluator = make_evaluator(space, accuracy_table, threads, train_device=train_device,
                               loader_workers=loader_workers)
    dataset = make_dataset(dataset_spec, dataset_option, input_shape)
    if no_store:
        result = evaluator(space, parsed, dataset, recipe=recipe, seed=seed)
        key = make_key(space, parsed, dataset, recipe=recipe, seed=seed, evaluator=evaluator)
        record = EvalRecord.from_result(key, result, protocol=evaluator.protocol(recipe))
        where = "not stored (--no-store)"
    else:
        with open_store(store_path) as store:
            record = store.evaluate(space, parsed, dataset, recipe=recipe, seed=seed, trainer=evaluator)
        where = (f"reused from {store.path} (evaluated {record.created_iso})" if record.reused
                 else f"stored in {store.path}")
    if as_json:
        print_json({**record.to_dict(), "reused": record.reused})
        return
    verb = "looked up" if record.source == "table" else "trained"
    click.echo(f"arch          {record.arch}")
    click.echo(f"data set      {record.dataset}  ({format_input_shape(dataset.input_shape)}, "
               f"{dataset.num_classes} classes)")
    click.echo(f"val accuracy  {_pct(record.val_accuracy)}"
               + (f"  (val loss {record.val_loss:.4f})" if record.val_loss is not None else ""))
    click.echo(f"params        {record.params:,}" if record.params is not None else "params        -")
    click.echo(f"time          {record.wall_time_s:.1f} s {verb}  ({record.fidelity}, seed {record.seed}"
               + (f", {record.threads} threads" if record.threads else "")
               + (f", on {record.recipe['train_device']}" if record.recipe.get("train_device") else "")
               + f", recipe {record.recipe_hash})")
    click.echo(f"store         {where}")


# -- hwnas datasets ------------------------------------------------------------------------------------------
@click.command("datasets")
@click.argument("specs", nargs=-1, metavar="[FOLDER|FILE.npz]...")
@click.option("--input-shape", type=INPUT_SHAPE, help="For image folders: the CxHxW images are converted to.")
@click.option("--seed", "split_seed", type=SEED, default=0, show_default=True, help="Split seed of the sizes.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def datasets_cmd(specs: tuple[str, ...], input_shape, split_seed: int, as_json: bool) -> None:
    """List the registered data sets (or check your own) with shapes, classes and split sizes."""
    from hwnas.data import DATASETS, create_dataset, resolve_dataset

    datasets = [create_dataset(name) for name in DATASETS.names()] if not specs else \
        [resolve_dataset(spec, input_shape=input_shape) for spec in specs]
    rows = []
    for ds in datasets:
        train_n, val_n, test_n = ds.split_sizes(split_seed)
        rows.append({"name": ds.name, "key": ds.key, "input_shape": format_input_shape(ds.input_shape),
                     "classes": ds.num_classes, "train": train_n, "val": val_n, "test": test_n,
                     "description": ds.describe()})
    if as_json:
        print_json(rows)
        return
    header = ("data set", "input", "classes", "train", "val", "test")
    table = [header] + [(r["key"], r["input_shape"], str(r["classes"]), str(r["train"]), str(r["val"]),
                         str(r["test"])) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        desc = "description" if i == 0 else rows[i - 1]["description"]
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + desc)


# -- hwnas evals ---------------------------------------------------------------------------------------------
_SORT = {"created": ("created_at", False), "accuracy": ("val_accuracy", True), "time": ("wall_time_s", False),
         "params": ("params", False)}


@click.command("evals")
@store_option
@click.option("--space", help="Only this space (with or without options).")
@click.option("--dataset", help="Only this data set key (as shown in the list, e.g. digits).")
@click.option("--arch", help="Only this architecture (canonical string).")
@click.option("--seed", type=SEED, help="Only this training seed.")
@click.option("--epochs", type=EPOCHS, help="Only this fidelity in epochs.")
@click.option("--recipe", "recipe_hash", metavar="HASH", help="Only this recipe hash (or a prefix of it).")
@click.option("--source", type=click.Choice(["train", "table", "supernet"]),
              help="Only trained or only looked-up results.")
@click.option("--min-accuracy", type=FiniteFloat(0, 1),
              help="Only records at least this accurate (0..1).")
@click.option("--sort", type=click.Choice(list(_SORT)), default="created", show_default=True,
              help="Order (accuracy: best first).")
@click.option("--limit", "-n", type=click.IntRange(min=1), help="At most this many records.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as a JSON list.")
def evals_cmd(store_path: Path | None, space: str | None, dataset: str | None, arch: str | None,
              seed: int | None, epochs: int | None, recipe_hash: str | None, source: str | None,
              min_accuracy: float | None, sort: str, limit: int | None, as_json: bool) -> None:
    """List the stored evaluations, filtered."""
    order_by, descending = _SORT[sort]
    with open_store(store_path, must_exist=True) as store:
        records = store.query(space=space, dataset=dataset, arch=arch, seed=seed, epochs=epochs,
                              recipe_hash=recipe_hash, source=source, min_accuracy=min_accuracy,
                              order_by=order_by, descending=descending, limit=limit)
        total = len(store)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    header = ("val acc", "params", "time s", "fidelity", "seed", "recipe", "data set", "space", "created",
              "arch")
    rows = [(_pct(r.val_accuracy), "-" if r.params is None else f"{r.params:,}", f"{r.wall_time_s:.1f}",
             r.fidelity, str(r.seed), r.recipe_hash[:8], r.dataset, r.space, r.created_iso, r.arch)
            for r in records]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1])
    click.echo(f"{len(records)} of {total} evaluations")
