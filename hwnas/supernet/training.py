"""Training a supernet: sandwich rule with in-place distillation (BigNAS) or uniform single-path (SPOS).

The recipe is the one full trainings use (optimizer, schedule, regularisation, augmentation, ``epochs``,
``data_fraction``). An epoch's batch order, augmentation and sampled sub-networks come from
``(seed, epoch)`` alone, so a training resumed from the checkpoint of epoch ``e`` continues exactly as the
uninterrupted one: a Ctrl-C or ``kill -9`` loses at most the epoch in progress.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from hwnas import __version__
from hwnas.data.base import Dataset
from hwnas.data.resolve import DatasetSpec
from hwnas.io import check_output_folder
from hwnas.locks import folder_lock
from hwnas.spaces.base import SearchSpace
from hwnas.supernet.base import Supernet, SupernetError
from hwnas.supernet.networks import make_supernet
from hwnas.supernet.folder import SupernetFolder, SupernetSettings, load_tensors, save_tensors, sha256_file
from hwnas.training.recipe import Recipe, complete_recipe
from hwnas.training.store import space_key
from hwnas.training.augment import augment
from hwnas.training.loader import BatchSource
from hwnas.training.trainer import (DEFAULT_THREADS, MixedPrecision, as_layout, batches, check_amp, lr_factor,
                                    make_optimizer, memory_format, training_device, training_subset)

logger = logging.getLogger(__name__)

#: Called after every step with ``(epoch, step, steps_per_epoch, loss)`` (1-based epoch and step).
StepCallback = Callable[[int, int, int, float], None]


def step_archs(net: Supernet, settings: SupernetSettings, rng: np.random.Generator, epoch: int = 1) -> list:
    """The sub-networks one training step of ``epoch`` (1-based) runs, teacher first."""
    if epoch <= settings.largest_epochs:
        return [net.largest()]
    if settings.sampling == "uniform":
        return [net.space.sample(rng)]
    return [net.largest(), net.smallest()] + [net.space.sample(rng) for _ in range(settings.random_per_step)]


def _epoch_seeds(seed: int, epoch: int) -> tuple[int, np.random.Generator]:
    torch_seed = int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])
    return torch_seed, np.random.default_rng([int(seed), int(epoch), 7])


def build_supernet(space: SearchSpace, input_shape, num_classes: int, seed: int) -> Supernet:
    """A freshly initialised supernet (initialisation seeded like a full training's)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(np.random.SeedSequence(int(seed)).generate_state(1)[0]))
        return make_supernet(space, input_shape, num_classes)


def describe(space: SearchSpace, spec: DatasetSpec, dataset: Dataset, recipe: Recipe,
             settings: SupernetSettings) -> dict[str, Any]:
    """What identifies a supernet training (the metadata a resume must match)."""
    public = {k: v for k, v in vars(space).items() if not k.startswith("_")}
    return {"space": space.name, "space_options": json.loads(json.dumps(public)),
            "space_key": space_key(space), **spec.to_config(), "dataset_key": dataset.key,
            "dataset_name": dataset.name, "input_shape": list(dataset.input_shape),
            "num_classes": int(dataset.num_classes), "recipe": recipe.to_dict(), "settings": settings.to_dict()}


def train_supernet(folder: SupernetFolder, *, space: SearchSpace, spec: DatasetSpec, recipe: Recipe,
                   settings: SupernetSettings = SupernetSettings(), threads: int | None = None,
                   on_step: StepCallback | None = None,
                   on_epoch: Callable[[int, dict], None] | None = None, device: str = "cpu",
                   loader_workers: int | None = None) -> dict[str, Any]:
    """Trains (or resumes, or finds finished) the supernet in ``folder`` on the training ``device``
    (:mod:`hwnas.training.device`); returns its metadata. ``loader_workers``: DataLoader workers of a streamed
    data set.

    Raises:
        SupernetError: the folder holds another supernet (other space, data, recipe or settings), or a
            file in it is corrupt.
    """
    check_output_folder(folder.path, kinds=("supernet folder",), what="supernet folder", error=SupernetError)
    dev = training_device(device)  # an unusable device is one line before any work
    check_amp(recipe, dev)
    dataset = spec.resolve()
    identity = describe(space, spec, dataset, recipe, settings)
    with folder_lock(folder.path, what="supernet folder", error=SupernetError):
        if folder.exists:
            meta = folder.read_meta()
            _check_same(folder, meta, identity)
            if meta.get("finished"):
                return folder.finished_meta()
        else:
            meta = {**identity, "hwnas_version": __version__, "epochs_done": 0, "finished": False, "history": [],
                    "train_time_s": 0.0, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            folder.write_meta(meta)
        return _train(folder, meta, space=space, dataset=dataset, recipe=recipe, settings=settings,
                      threads=threads, on_step=on_step, on_epoch=on_epoch, device=dev, loader_workers=loader_workers)


def _check_same(folder: SupernetFolder, meta: dict, identity: dict) -> None:
    for key in ("space_key", "dataset_key", "input_shape", "num_classes", "recipe", "settings"):
        held = complete_recipe(meta[key]) if key == "recipe" and isinstance(meta.get(key), dict) else meta.get(key)
        if held != identity[key]:
            raise SupernetError(f"{folder.path} holds another supernet ({key} {meta.get(key)!r}, asked "
                                f"{identity[key]!r}); choose another -o, or repeat the settings it was made with")


def _train(folder: SupernetFolder, meta: dict, *, space: SearchSpace, dataset: Dataset, recipe: Recipe,
           settings: SupernetSettings, threads: int | None, on_step: StepCallback | None,
           on_epoch: Callable[[int, dict], None] | None, device: torch.device,
           loader_workers: int | None) -> dict[str, Any]:
    n_threads = DEFAULT_THREADS if threads is None else int(threads)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        net = build_supernet(space, dataset.input_shape, dataset.num_classes, settings.seed)
        net.to(device, memory_format=memory_format(dataset.input_shape))  # before the optimizer state is loaded
        optimizer = make_optimizer(net, recipe)
        start_epoch = 0
        if meta["epochs_done"] > 0:
            state = load_tensors(folder.checkpoint_file, what="supernet checkpoint")
            try:
                net.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                start_epoch = int(state["epoch"])
            except (KeyError, RuntimeError, ValueError, TypeError) as exc:
                raise SupernetError(f"{folder.checkpoint_file} is corrupt (supernet checkpoint): "
                                    f"{str(exc).splitlines()[0][:200]}") from None
            if start_epoch != meta["epochs_done"]:
                raise SupernetError(f"{folder.checkpoint_file} is of epoch {start_epoch}, {folder.meta_file} says "
                                    f"{meta['epochs_done']}: the folder is inconsistent")
            logger.info("resuming supernet training at epoch %d of %d", start_epoch + 1, recipe.epochs)
        splits = dataset.splits(recipe.split_seed)
        x_train, y_train = training_subset(splits, recipe.data_fraction, recipe.split_seed)
        source = BatchSource(x_train, y_train, device=device, workers=loader_workers)
        steps = len(batches(len(source), recipe.batch_size, torch.Generator().manual_seed(0)))
        total, warmup = steps * recipe.epochs, min(steps * recipe.epochs, int(round(recipe.warmup_epochs * steps)))
        criterion = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        precision = MixedPrecision(recipe.amp, device)
        for epoch in range(start_epoch + 1, recipe.epochs + 1):
            began = time.perf_counter()
            torch_seed, rng = _epoch_seeds(settings.seed, epoch)
            generator = torch.Generator().manual_seed(torch_seed)
            net.train()
            losses = []
            order = batches(len(source), recipe.batch_size, generator)
            for i, (inputs, labels) in enumerate(source.batches(order)):
                inputs = as_layout(augment(inputs, recipe, generator))
                factor = lr_factor((epoch - 1) * steps + i, total_steps=total, warmup_steps=warmup)
                for group in optimizer.param_groups:
                    group["lr"] = recipe.lr * factor
                optimizer.zero_grad(set_to_none=True)
                loss = _step(net, inputs, labels, step_archs(net, settings, rng, epoch), criterion=criterion,
                             distill=settings.distill and settings.sampling == "sandwich", precision=precision)
                precision.step(optimizer)
                losses.append(loss)
                if on_step is not None:
                    on_step(epoch, i + 1, steps, loss)
            epoch_loss = float(np.mean(losses))
            if not np.isfinite(epoch_loss):
                raise SupernetError(f"supernet training diverged in epoch {epoch} (loss {epoch_loss}); lower "
                                    f"the learning rate (-R lr=...)")
            save_tensors(folder.checkpoint_file, {"epoch": epoch, "model": net.state_dict(),
                                                  "optimizer": optimizer.state_dict()})
            seconds = time.perf_counter() - began
            meta["epochs_done"] = epoch
            meta["train_time_s"] = round(float(meta.get("train_time_s", 0.0)) + seconds, 2)
            meta["history"] = list(meta.get("history", [])) + [
                {"epoch": epoch, "loss": round(epoch_loss, 5), "seconds": round(seconds, 2)}]
            meta["threads"] = n_threads
            meta["train_device"] = str(device)
            folder.write_meta(meta)  # after the checkpoint: a kill in between redoes nothing but this write
            logger.info("supernet epoch %d/%d: loss %.4f", epoch, recipe.epochs, epoch_loss)
            if on_epoch is not None:
                on_epoch(epoch, meta)
        source.close()
        save_tensors(folder.weights_file, {"model": net.to("cpu", memory_format=torch.contiguous_format).state_dict()})
        meta["checksum"] = sha256_file(folder.weights_file)
        meta["finished"] = True
        folder.write_meta(meta)
        folder.checkpoint_file.unlink(missing_ok=True)
        return meta
    finally:
        torch.set_num_threads(previous_threads)


def _step(net: Supernet, inputs: torch.Tensor, labels: torch.Tensor, archs: list, *,
          criterion: torch.nn.Module, distill: bool, precision: MixedPrecision) -> float:
    """Accumulates the gradients of one step over ``archs``; returns the first (teacher) loss."""
    teacher = None
    first = float("nan")
    for i, arch in enumerate(archs):
        with precision.autocast():
            logits = net(inputs, arch)
            if teacher is not None:
                loss = F.kl_div(F.log_softmax(logits.float(), dim=1), teacher, reduction="batchmean")
            else:
                loss = criterion(logits, labels)
        precision.backward(loss)
        if i == 0:
            first = float(loss.detach())
            if distill:
                teacher = F.softmax(logits.detach().float(), dim=1)
    return first
