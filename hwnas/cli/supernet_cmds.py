"""``hwnas supernet train`` and ``hwnas supernet eval``: weight sharing, one network for the whole space."""

from __future__ import annotations

import time
from pathlib import Path

import click

from hwnas.cli.common import SEED, THREADS, bars_wanted, make_space, print_json, progress_echo, space_options
from hwnas.cli.train_cmds import (THREADS_HELP, _pct, dataset_options, device_options, make_recipe, open_store,
                                  recipe_options, store_option)
from hwnas.training.device import DEFAULT_DEVICE
from hwnas.shapes import MAX_EPOCHS

DEFAULT_FOLDER = "supernets"
#: Supernet epochs unless --epochs says otherwise: one sub-network a step learns slowly (60 uniform epochs cost
#: about as much as 10 of the sandwich rule).
DEFAULT_EPOCHS = 60


@click.group("supernet")
def supernet_cmd() -> None:
    """Train a weight-sharing supernet and estimate architectures with it."""


class _Progress:
    """A rich bar with ETA over all steps on a terminal; one log line per epoch otherwise."""

    def __init__(self, total_epochs: int, start_epoch: int) -> None:
        self.total_epochs = total_epochs
        self.bar = None
        self.task = None
        self.start = time.monotonic()
        self.last = 0.0
        self.first_epoch = start_epoch + 1
        if bars_wanted():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("supernet"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                                console=Console(stderr=True), auto_refresh=False)
            self.bar.start()

    def step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        if self.bar is None:
            return
        if self.task is None:
            self.task = self.bar.add_task("", total=steps * (self.total_epochs - self.first_epoch + 1), note="")
        self.bar.update(self.task, advance=1, note=f"epoch {epoch}/{self.total_epochs} loss {loss:.3f}")
        now = time.monotonic()
        if now - self.last >= 0.2:
            self.bar.refresh()
            self.last = now

    def epoch(self, epoch: int, meta: dict) -> None:
        if self.bar is not None:
            return
        done = epoch - self.first_epoch + 1
        per = (time.monotonic() - self.start) / done
        progress_echo(as_json=True)(f"epoch {epoch}/{self.total_epochs}: loss {meta['history'][-1]['loss']:.4f}, "
                                    f"{meta['history'][-1]['seconds']:.0f} s; ETA "
                                    f"{(self.total_epochs - epoch) * per / 60:.1f} min")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.refresh()
            self.bar.stop()


def default_output(space_name: str, dataset_name: str, seed: int) -> Path:
    from hwnas.data.resolve import safe_name

    return Path(DEFAULT_FOLDER) / f"{space_name}-{safe_name(dataset_name)}-s{seed}"


@supernet_cmd.command("train")
@space_options
@dataset_options
@recipe_options
@click.option("--sampling", type=click.Choice(["uniform", "sandwich"]), default="uniform", show_default=True,
              help="Sub-networks per step: one random one (SPOS), or the largest, the smallest and random ones "
                   "(BigNAS).")
@click.option("--random-per-step", type=click.IntRange(0, 16), default=2, show_default=True,
              help="Random sub-networks per step of the sandwich rule.")
@click.option("--no-distill", is_flag=True, help="Sandwich rule: train every sub-network on the labels instead of "
                                                 "the largest one's predictions.")
@click.option("--largest-epochs", type=click.IntRange(0, MAX_EPOCHS), default=0, show_default=True,
              help="Train the largest sub-network alone for the first N epochs (Once-for-All's first phase).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of weights, batches and sampling.")
@click.option("--train-threads", "--threads", "threads", type=THREADS,
              help=f"{THREADS_HELP}; --threads is its old name.")
@device_options
@click.option("--output", "-o", type=click.Path(path_type=Path),
              help="The supernet folder [default: supernets/<space>-<data set>-s<seed>]; an unfinished one is "
                   "resumed.")
@click.option("--json", "as_json", is_flag=True, help="Print the supernet's metadata as JSON.")
def supernet_train_cmd(space_name: str, space_option: tuple[str, ...], dataset_spec: str,
                       dataset_option: tuple[str, ...], input_shape, epochs: int | None, data_fraction: float | None,
                       recipe_option: tuple[str, ...], sampling: str, random_per_step: int, no_distill: bool,
                       largest_epochs: int, seed: int, threads: int | None, train_device: str,
                       loader_workers: int | None, output: Path | None, as_json: bool) -> None:
    """Train one weight-sharing network covering the whole space (resumable: run it again to continue).

    Every architecture of the space is a sub-network. mobilenet: leading blocks of each stage (depth), leading
    channels (width, expansion), the centre of the 7x7 kernels (kernel size), squeeze-excite used or skipped.
    nb201: every candidate operation on every edge, one chosen per edge (one-shot, as SPOS). The recipe
    options are the full trainings' (--epochs defaults to 60). A checkpoint is written after every epoch;
    Ctrl-C or a kill loses at most the epoch in progress.
    """
    from hwnas.cli.train_cmds import dataset_spec_of
    from hwnas.io import check_output_folder
    from hwnas.supernet.base import SupernetError
    from hwnas.supernet.folder import SupernetFolder, SupernetSettings
    from hwnas.supernet.training import train_supernet
    from hwnas.training.trainer import training_device

    if output is not None:  # a foreign folder, a file or a device: before any work
        check_output_folder(output, kinds=("supernet folder",), what="supernet folder", error=SupernetError)
    training_device(train_device)  # usable here, before any work
    space = make_space(space_name, space_option)
    recipe = make_recipe(epochs or DEFAULT_EPOCHS, data_fraction, recipe_option)
    spec = dataset_spec_of(dataset_spec, dataset_option, input_shape)
    dataset = spec.resolve()
    folder = SupernetFolder(output or default_output(space.name, dataset.name, seed))
    settings = SupernetSettings(sampling=sampling, random_per_step=random_per_step, distill=not no_distill,
                                seed=seed, largest_epochs=largest_epochs)
    start = folder.read_meta()["epochs_done"] if folder.exists else 0
    progress_echo(as_json=True)(f"supernet {folder.path}: {space.name} on {dataset.name}, {sampling} sampling, "
                                f"{recipe.epochs} epochs" + (f", resuming after epoch {start}" if start else ""))
    progress = _Progress(recipe.epochs, start)
    try:
        meta = train_supernet(folder, space=space, spec=spec, recipe=recipe, settings=settings, threads=threads,
                              on_step=progress.step, on_epoch=progress.epoch, device=train_device,
                              loader_workers=loader_workers)
    finally:
        progress.close()
    if as_json:
        print_json(meta)
        return
    click.echo(f"supernet      {folder.path}")
    click.echo(f"trained       {meta['epochs_done']} epochs in {meta['train_time_s'] / 60:.1f} min "
               f"(final loss {meta['history'][-1]['loss']:.4f})" if meta["history"] else "")
    click.echo(f"checksum      {meta['checksum']}")


def _score_images(ctx, param, value: str) -> int | None:
    if str(value).lower() == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise click.BadParameter(f"{value!r} is neither a positive number of images nor 'all'")
    return count


@supernet_cmd.command("eval")
@click.argument("archs", nargs=-1, metavar="ARCH...")
@click.option("--supernet", "supernet_path", required=True, type=click.Path(path_type=Path),
              help="A finished supernet folder.")
@click.option("--sample", "sample_n", type=click.IntRange(min=1), help="Also estimate N random architectures.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of --sample.")
@click.option("--calibration-images", type=click.IntRange(min=2, max=100_000), default=64, show_default=True,
              help="Training images the batch-norm statistics are recalibrated on.")
@click.option("--score-images", default="1000", show_default=True, callback=_score_images, metavar="N|all",
              help="Validation images scored (a fixed random subset), or 'all' of the split.")
@click.option("--train-threads", "--threads", "threads", type=THREADS,
              help=f"{THREADS_HELP}; --threads is its old name.")
@click.option("--train-device", default=DEFAULT_DEVICE, show_default=True, metavar="auto|cpu|cuda|cuda:N|mps",
              help="Where sub-networks are recalibrated and scored: auto is CUDA if present, else the CPU (which "
                   "scores with onnxruntime; a GPU with PyTorch, its estimates stored apart).")
@store_option
@click.option("--no-store", is_flag=True, help="Neither read nor write the evaluation store.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as a JSON list.")
def supernet_eval_cmd(archs: tuple[str, ...], supernet_path: Path, sample_n: int | None, seed: int,
                      calibration_images: int, score_images: int | None, threads: int | None, train_device: str,
                      store_path: Path | None, no_store: bool, as_json: bool) -> None:
    """Estimate the validation accuracy of ARCH... with a supernet (weights shared, BN recalibrated).

    Estimates go into the evaluation store as source 'supernet' under the supernet's checksum, apart from
    full trainings ('hwnas evals --source supernet' lists them).
    """
    import numpy as np

    from hwnas.data.resolve import DatasetSpec
    from hwnas.supernet.estimate import SupernetEstimator
    from hwnas.training import EvalRecord, make_key

    estimator = SupernetEstimator(supernet_path, threads=threads, calibration_images=calibration_images,
                                  score_images=score_images, device=train_device)
    space, meta = estimator.space, estimator.meta
    parsed = [space.parse(a) for a in archs]
    if sample_n:
        parsed += space.sample_distinct(sample_n, np.random.default_rng(seed), exclude={a.string for a in parsed})
    if not parsed:
        raise click.UsageError("give at least one ARCH or --sample N")
    dataset = DatasetSpec.from_config(meta).resolve()
    estimator.check_task(space, dataset)
    records = []
    store = None if no_store else open_store(store_path)
    try:
        for arch in parsed:
            if store is None:
                result = estimator(space, arch, dataset, recipe=estimator.recipe, seed=estimator.seed)
                key = make_key(space, arch, dataset, recipe=estimator.recipe, seed=estimator.seed, evaluator=estimator)
                record = EvalRecord.from_result(key, result, protocol=estimator.protocol(estimator.recipe))
            else:
                record = store.evaluate(space, arch, dataset, recipe=estimator.recipe, seed=estimator.seed,
                                        trainer=estimator)
            records.append(record)
            if not as_json:
                click.echo(f"{_pct(record.val_accuracy):>8}  {record.wall_time_s:5.2f} s  {record.arch}")
    finally:
        if store is not None:
            store.close()
    if as_json:
        print_json([{**r.to_dict(), "reused": r.reused} for r in records])
