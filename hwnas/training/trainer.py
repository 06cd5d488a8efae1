"""Training one architecture on one data set with a :class:`~hwnas.training.recipe.Recipe`.

Deterministic for a seed on CPU (at a fixed thread count): weights are initialised inside a forked global
RNG seeded from ``seed``, and batch order and augmentation draw from a local :class:`torch.Generator`, so
nothing else in the process disturbs or is disturbed by a run. The train/validation/test split comes from
``recipe.split_seed``, the same for every architecture and training seed.

Image models train and evaluate in the channels-last memory layout: PyTorch's CPU depthwise and 1x1
convolutions run 1.8x faster in it (0.25 vs 0.45 s per step of 32 images at 32x32, 1 thread, mean of 8
random ``mobilenet`` architectures); the arithmetic is the same, the layout only orders it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.arch import Arch
from hwnas.data.base import Dataset, Splits
from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace
from hwnas.training.recipe import DEFAULT_RECIPE, Recipe

logger = logging.getLogger(__name__)

EVAL_BATCH = 512


class TrainingError(HwnasError):
    """A training run cannot start (too little data, bad device, ...)."""


@dataclass(frozen=True)
class TrainResult:
    """What one evaluation produced.

    Attributes:
        val_accuracy: Top-1 accuracy on the validation split, in [0, 1].
        val_loss: Mean cross-entropy on the validation split (NaN when training diverged or is unknown).
        params: Trainable parameters of the model (None when the source does not build it).
        wall_time_s: Seconds the evaluation took.
        epochs: Epochs trained (the fidelity; 0 for a table lookup).
        data_fraction: Share of the training split used (the fidelity).
        source: ``"train"`` or ``"table"``.
        train_loss: Mean training loss of the last epoch (NaN when unknown).
        test_accuracy: Accuracy on the test split, only when asked for (``report_test=True``).
        threads: CPU threads used (None when not applicable).
        model: The trained model (in eval mode, on the CPU), only with ``return_model=True``.
        val_curve: Validation accuracy after each epoch trained, only with ``val_curve=True`` (its last entry
            is ``val_accuracy``).
    """

    val_accuracy: float
    val_loss: float
    params: int | None
    wall_time_s: float
    epochs: int
    data_fraction: float
    source: str = "train"
    train_loss: float = float("nan")
    test_accuracy: float | None = None
    threads: int | None = None
    model: nn.Module | None = field(default=None, compare=False, repr=False)
    val_curve: tuple[float, ...] | None = None


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def train(space: SearchSpace, arch: Arch, dataset: Dataset, *, recipe: Recipe = DEFAULT_RECIPE, seed: int = 0,
          threads: int | None = None, device: str = "cpu", report_test: bool = False,
          return_model: bool = False, on_epoch: Callable[[int, float], None] | None = None,
          initial_state: Mapping[str, torch.Tensor] | None = None, val_curve: bool = False) -> TrainResult:
    """Trains ``arch`` from scratch (or from ``initial_state``) on ``dataset`` and measures it on the validation
    split.

    Args:
        space: The search space that builds the model (``space.build(arch, input_shape, num_classes)``).
        arch: An architecture of ``space``.
        dataset: The data set; its splits come from ``recipe.split_seed``.
        recipe: Optimiser, schedule, regularisation and fidelity.
        seed: Seed of the weight initialisation, batch order and augmentation.
        threads: CPU threads for PyTorch (all available cores by default); restored afterwards.
        device: ``"cpu"`` (deterministic) or another PyTorch device such as ``"cuda"``.
        report_test: Also measure the test split (stored for reporting; a search never selects on it).
        return_model: Keep the trained model in the result (e.g. for export).
        on_epoch: Called after each epoch with ``(epoch, mean training loss)`` (1-based epoch).
        initial_state: Weights to start from instead of a fresh initialisation (a state dict of the model
            ``space.build`` makes, e.g. a supernet's sub-network); ``seed`` still orders the batches.
        val_curve: Also measure the validation accuracy after every epoch (a learning curve; costs one
            validation pass per epoch and changes nothing else: the training is the same with or without).

    Returns:
        The validation accuracy and loss, parameter count, wall time and fidelity of the run.

    Raises:
        TrainingError: the training subset has fewer than two samples, the device is unusable or
            ``initial_state`` does not fit the model.
    """
    start = time.perf_counter()
    n_threads = available_cores() if threads is None else int(threads)
    if n_threads < 1:
        raise TrainingError(f"threads must be >= 1, got {threads}")
    try:
        dev = torch.device(device)
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as exc:
        raise TrainingError(f"device {device!r} is not usable: {exc}") from None
    splits = dataset.splits(recipe.split_seed)
    x_train, y_train = training_subset(splits, recipe.data_fraction, recipe.split_seed)
    if len(y_train) < 2:
        raise TrainingError(f"{dataset.name}: {len(y_train)} training sample(s) at data fraction "
                            f"{recipe.data_fraction:g}; at least 2 are needed")
    init_seed, data_seed = (int(s) for s in np.random.SeedSequence(int(seed)).generate_state(2))

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = space.build(arch, dataset.input_shape, dataset.num_classes)
        if initial_state is not None:
            try:
                model.load_state_dict(initial_state)
            except (RuntimeError, KeyError) as exc:
                raise TrainingError(f"the initial weights do not fit {arch.string}: "
                                    f"{str(exc).splitlines()[0][:200]}") from None
        model.to(dev, memory_format=memory_format(dataset.input_shape))
        generator = torch.Generator().manual_seed(data_seed)
        curve: list[tuple[float, float]] = []  # (accuracy, loss) after each epoch, with val_curve

        def after_epoch(epoch: int, loss: float) -> None:
            if val_curve:  # evaluation neither draws random numbers nor touches batch-norm statistics
                curve.append(evaluate_model(model, splits.x_val, splits.y_val, device=dev))
                model.train()
            if on_epoch is not None:
                on_epoch(epoch, loss)

        train_loss = _fit(model, torch.from_numpy(x_train).to(dev), torch.from_numpy(y_train).to(dev),
                          recipe=recipe, generator=generator, on_epoch=after_epoch)
        # the last epoch's evaluation is of the final model (training stops right after one)
        val_acc, val_loss = curve[-1] if curve else evaluate_model(model, splits.x_val, splits.y_val, device=dev)
        test_acc = evaluate_model(model, splits.x_test, splits.y_test, device=dev)[0] if report_test else None
    finally:
        torch.set_num_threads(previous_threads)
    params = sum(p.numel() for p in model.parameters())
    wall = time.perf_counter() - start
    logger.info("trained %s on %s (%s, seed %d): val accuracy %.4f in %.1f s", arch.string, dataset.name,
                recipe.fidelity, seed, val_acc, wall)
    return TrainResult(val_accuracy=val_acc, val_loss=val_loss, params=int(params), wall_time_s=wall,
                       epochs=recipe.epochs, data_fraction=recipe.data_fraction, source="train",
                       train_loss=train_loss, test_accuracy=test_acc, threads=n_threads,
                       model=_plain(model.cpu()).eval() if return_model else None,
                       val_curve=tuple(accuracy for accuracy, _ in curve) if val_curve else None)


def memory_format(input_shape) -> torch.memory_format:
    """Channels-last for images (``(C, H, W)`` inputs), the plain layout otherwise."""
    return torch.channels_last if len(tuple(input_shape)) == 3 else torch.contiguous_format


def as_layout(x: torch.Tensor) -> torch.Tensor:
    """A batch in the layout :func:`memory_format` gives its models."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _plain(model: nn.Module) -> nn.Module:
    """``model`` with its weights back in the plain layout (for export and saving)."""
    return model.to(memory_format=torch.contiguous_format)


def training_subset(splits: Splits, fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``ceil(fraction * n_c)`` samples of each class ``c`` in a fixed per-class order.

    The order comes from ``split_seed`` only, so the subsets of growing fractions are nested and identical
    for every architecture and training seed.
    """
    if fraction >= 1.0:
        return splits.x_train, splits.y_train
    rng = np.random.default_rng([int(split_seed), 0x5EED])
    keep = []
    for label in np.unique(splits.y_train):
        members = np.flatnonzero(splits.y_train == label)
        members = members[rng.permutation(len(members))]
        keep.append(members[: max(1, math.ceil(fraction * len(members)))])
    index = np.sort(np.concatenate(keep))
    return splits.x_train[index], splits.y_train[index]


def _parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = _parameter_groups(model, recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)
    return torch.optim.AdamW(groups, lr=recipe.lr)


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < max(2, batch_size // 2):
        chunks.pop()  # a tiny last batch makes a noisy step and can break batch norm
    return chunks


def lr_factor(step: int, *, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up to 1 over ``warmup_steps``, then cosine annealing to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Translates each image by a random offset in ``[-pixels, pixels]`` in both axes (edges replicated)."""
    if pixels <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels, pixels, pixels, pixels), mode="replicate")
    offsets = torch.randint(0, 2 * pixels + 1, (n, 2), generator=generator)
    out = torch.empty_like(x)
    for dy in range(2 * pixels + 1):
        for dx in range(2 * pixels + 1):
            mask = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
            if mask.any():
                out[mask] = padded[mask, :, dy:dy + h, dx:dx + w]
    return out


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, recipe: Recipe, generator: torch.Generator,
         on_epoch: Callable[[int, float], None] | None) -> float:
    optimizer = make_optimizer(model, recipe)
    steps_per_epoch = len(batches(len(y), recipe.batch_size, torch.Generator().manual_seed(0)))
    total = steps_per_epoch * recipe.epochs
    warmup = min(total, int(round(recipe.warmup_epochs * steps_per_epoch)))
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    step = 0
    epoch_loss = float("nan")
    model.train()
    for epoch in range(1, recipe.epochs + 1):
        losses = []
        for index in batches(len(y), recipe.batch_size, generator):
            index = index.to(x.device)
            inputs = x[index]
            if recipe.augment == "shift":
                inputs = shift(inputs, recipe.shift_pixels, generator)
            inputs = as_layout(inputs)
            factor = lr_factor(step, total_steps=total, warmup_steps=warmup)
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * factor
            loss = criterion(model(inputs), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            step += 1
        epoch_loss = float(torch.stack(losses).mean())
        logger.debug("epoch %d/%d: training loss %.4f", epoch, recipe.epochs, epoch_loss)
        if on_epoch is not None:
            on_epoch(epoch, epoch_loss)
        if not math.isfinite(epoch_loss):
            logger.warning("training diverged in epoch %d (loss %s); stopping early", epoch, epoch_loss)
            break
    model.eval()
    return epoch_loss


@torch.inference_mode()
def evaluate_model(model: nn.Module, x: np.ndarray, y: np.ndarray, *, device: torch.device | str = "cpu"
                   ) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` (put in eval mode) on ``(x, y)``."""
    if len(y) == 0:
        return float("nan"), float("nan")
    model.eval()
    correct = 0
    loss_sum = 0.0
    for begin in range(0, len(y), EVAL_BATCH):
        inputs = as_layout(torch.from_numpy(x[begin:begin + EVAL_BATCH]).to(device))
        labels = torch.from_numpy(y[begin:begin + EVAL_BATCH]).to(device)
        logits = model(inputs)
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(dim=1) == labels).sum())
    return correct / len(y), loss_sum / len(y)
