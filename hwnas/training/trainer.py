"""Training one architecture on one data set with a :class:`~hwnas.training.recipe.Recipe`.

Deterministic for a seed on CPU (at a fixed thread count): weights are initialised inside a forked global
RNG seeded from ``seed``, and batch order and augmentation draw from a local :class:`torch.Generator`, so
nothing else in the process disturbs or is disturbed by a run. The train/validation/test split comes from
``recipe.split_seed``, the same for every architecture and training seed.

Image models train and evaluate in the channels-last memory layout: PyTorch's CPU depthwise and 1x1
convolutions run 1.8x faster in it (0.25 vs 0.45 s per step of 32 images at 32x32, 1 thread, mean of 8
random ``mobilenet`` architectures); the arithmetic is the same, the layout only orders it. On a GPU the same
layout lets cuDNN pick its tensor-core kernels under mixed precision.

Every path is device-agnostic: ``device`` names where the model trains (:mod:`hwnas.training.device`), the
data come through :class:`~hwnas.training.loader.BatchSource` (in memory, or streamed by DataLoader workers),
augmentation runs on the device (:mod:`hwnas.training.augment`), and ``recipe.amp`` turns on mixed precision.
On a GPU the kernels are not bit-for-bit deterministic; the evaluation store keys such results apart
(:meth:`hwnas.training.evaluator.Trainer.protocol_key`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.arch import Arch
from hwnas.data.base import Dataset, Splits
from hwnas.data.lazy import Inputs, take
from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace
from hwnas.training.augment import augment, shift  # noqa: F401 - shift: the supernet's and old imports
from hwnas.training.device import available_cores  # noqa: F401 - imported from here by older code
from hwnas.training.loader import BatchSource
from hwnas.training.recipe import DEFAULT_RECIPE, Recipe

logger = logging.getLogger(__name__)

EVAL_BATCH = 512
#: PyTorch threads of a training unless told otherwise, in every command and in Python: one thread keeps a
#: training from disturbing latency measurements and other work, and is as fast per core for these models.
DEFAULT_THREADS = 1


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
        device: The device it trained on (``cpu``, ``cuda:0``; None when not applicable).
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
    device: str | None = None


def train(space: SearchSpace, arch: Arch, dataset: Dataset, *, recipe: Recipe = DEFAULT_RECIPE, seed: int = 0,
          threads: int | None = None, device: str = "cpu", report_test: bool = False,
          return_model: bool = False, on_epoch: Callable[[int, float], None] | None = None,
          initial_state: Mapping[str, torch.Tensor] | None = None, val_curve: bool = False,
          loader_workers: int | None = None) -> TrainResult:
    """Trains ``arch`` from scratch (or from ``initial_state``) on ``dataset`` and measures it on the validation
    split.

    Args:
        space: The search space that builds the model (``space.build(arch, input_shape, num_classes)``).
        arch: An architecture of ``space``.
        dataset: The data set; its splits come from ``recipe.split_seed``. In-memory splits are moved to the
            device once; lazy ones (:class:`~hwnas.data.lazy.LazyArray`) stream through a DataLoader.
        recipe: Optimiser, schedule, regularisation, augmentation, mixed precision and fidelity.
        seed: Seed of the weight initialisation, batch order and augmentation.
        threads: CPU threads for PyTorch (1 by default: see :data:`DEFAULT_THREADS`); restored afterwards.
        device: A training device's name (:mod:`hwnas.training.device`: ``auto``, ``cpu``, ``cuda``,
            ``cuda:N``, ``mps``) or a :class:`torch.device`. ``cpu`` is deterministic for a seed.
        report_test: Also measure the test split (stored for reporting; a search never selects on it).
        return_model: Keep the trained model in the result (e.g. for export).
        on_epoch: Called after each epoch with ``(epoch, mean training loss)`` (1-based epoch).
        initial_state: Weights to start from instead of a fresh initialisation (a state dict of the model
            ``space.build`` makes, e.g. a supernet's sub-network); ``seed`` still orders the batches.
        val_curve: Also measure the validation accuracy after every epoch (a learning curve; costs one
            validation pass per epoch and changes nothing else: the training is the same with or without).
        loader_workers: DataLoader worker processes of a streamed data set (None: up to 4; 0: none).

    Returns:
        The validation accuracy and loss, parameter count, wall time, fidelity and device of the run.

    Raises:
        TrainingError: the training subset has fewer than two samples, the device is unusable, the recipe's
            mixed precision does not run on it, or ``initial_state`` does not fit the model.
    """
    start = time.perf_counter()
    n_threads = DEFAULT_THREADS if threads is None else int(threads)
    if n_threads < 1:
        raise TrainingError(f"threads must be >= 1, got {threads}")
    dev = training_device(device)
    check_amp(recipe, dev)
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
        val_source = BatchSource(splits.x_val, splits.y_val, device=dev, workers=loader_workers)

        def after_epoch(epoch: int, loss: float) -> None:
            if val_curve:  # evaluation neither draws random numbers nor touches batch-norm statistics
                curve.append(evaluate_source(model, val_source))
                model.train()
            if on_epoch is not None:
                on_epoch(epoch, loss)

        with BatchSource(x_train, y_train, device=dev, workers=loader_workers) as train_source:
            train_loss = _fit(model, train_source, recipe=recipe, generator=generator, on_epoch=after_epoch)
        with val_source:
            # the last epoch's evaluation is of the final model (training stops right after one)
            val_acc, val_loss = curve[-1] if curve else evaluate_source(model, val_source)
        test_acc = None
        if report_test:
            with BatchSource(splits.x_test, splits.y_test, device=dev, workers=loader_workers) as test_source:
                test_acc = evaluate_source(model, test_source)[0]
    finally:
        torch.set_num_threads(previous_threads)
    params = sum(p.numel() for p in model.parameters())
    wall = time.perf_counter() - start
    logger.info("trained %s on %s (%s, seed %d, %s): val accuracy %.4f in %.1f s", arch.string, dataset.name,
                recipe.fidelity, seed, dev, val_acc, wall)
    return TrainResult(val_accuracy=val_acc, val_loss=val_loss, params=int(params), wall_time_s=wall,
                       epochs=recipe.epochs, data_fraction=recipe.data_fraction, source="train",
                       train_loss=train_loss, test_accuracy=test_acc, threads=n_threads,
                       model=_plain(model.cpu()).eval() if return_model else None,
                       val_curve=tuple(accuracy for accuracy, _ in curve) if val_curve else None,
                       device=str(dev))


def training_device(device: str | torch.device) -> torch.device:
    """The :class:`torch.device` of a training device's name (resolved here; see
    :func:`hwnas.training.device.resolve`).

    Raises:
        TrainingError: the device is unknown or unusable here (one line).
    """
    from hwnas.training.device import DeviceError, resolve

    if isinstance(device, torch.device):
        return device
    try:
        return resolve(device)
    except DeviceError as exc:
        raise TrainingError(str(exc)) from None


def check_amp(recipe: Recipe, device: torch.device) -> None:
    """Refuses mixed precision the device cannot train in (``fp16`` needs a GPU)."""
    if recipe.amp == "fp16" and device.type == "cpu":
        raise TrainingError("-R amp=fp16 needs a GPU (float16 training on the CPU is slow and unsupported); "
                            "use -R amp=bf16 or -R amp=off on the CPU")


def memory_format(input_shape) -> torch.memory_format:
    """Channels-last for images (``(C, H, W)`` inputs), the plain layout otherwise."""
    return torch.channels_last if len(tuple(input_shape)) == 3 else torch.contiguous_format


def as_layout(x: torch.Tensor) -> torch.Tensor:
    """A batch in the layout :func:`memory_format` gives its models."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _plain(model: nn.Module) -> nn.Module:
    """``model`` with its weights back in the plain layout (for export and saving)."""
    return model.to(memory_format=torch.contiguous_format)


def training_subset(splits: Splits, fraction: float, split_seed: int) -> tuple[Inputs, np.ndarray]:
    """The first ``ceil(fraction * n_c)`` samples of each class ``c`` in a fixed per-class order.

    The order comes from ``split_seed`` only, so the subsets of growing fractions are nested and identical
    for every architecture and training seed. A lazy split gives a lazy subset (nothing is read).
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
    return take(splits.x_train, index), splits.y_train[index]


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


def _fit(model: nn.Module, source: BatchSource, *, recipe: Recipe, generator: torch.Generator,
         on_epoch: Callable[[int, float], None] | None) -> float:
    optimizer = make_optimizer(model, recipe)
    steps_per_epoch = len(batches(len(source), recipe.batch_size, torch.Generator().manual_seed(0)))
    total = steps_per_epoch * recipe.epochs
    warmup = min(total, int(round(recipe.warmup_epochs * steps_per_epoch)))
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    precision = MixedPrecision(recipe.amp, next(model.parameters()).device)
    step = 0
    epoch_loss = float("nan")
    model.train()
    for epoch in range(1, recipe.epochs + 1):
        losses = []
        # the epoch's batch order is drawn before its first augmentation, as it always was
        for inputs, labels in source.batches(batches(len(source), recipe.batch_size, generator)):
            inputs = as_layout(augment(inputs, recipe, generator))
            factor = lr_factor(step, total_steps=total, warmup_steps=warmup)
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * factor
            with precision.autocast():
                loss = criterion(model(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            precision.backward_and_step(loss, optimizer)
            losses.append(loss.detach())
            step += 1
        epoch_loss = float(torch.stack(losses).float().mean())
        logger.debug("epoch %d/%d: training loss %.4f", epoch, recipe.epochs, epoch_loss)
        if on_epoch is not None:
            on_epoch(epoch, epoch_loss)
        if not math.isfinite(epoch_loss):
            logger.warning("training diverged in epoch %d (loss %s); stopping early", epoch, epoch_loss)
            break
    model.eval()
    return epoch_loss


class MixedPrecision:
    """The recipe's ``amp`` on one device: autocast to bfloat16 or float16 (with a gradient scaler), or
    nothing."""

    def __init__(self, amp: str, device: torch.device) -> None:
        self.device_type = device.type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def autocast(self):
        if self.dtype is None:  # no autocast context at all (older PyTorch refuses some device types)
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulates the gradients of ``loss`` (scaled under ``fp16``)."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """One optimiser step on the accumulated gradients (skipped by the scaler when they overflowed)."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        self.backward(loss)
        self.step(optimizer)


@torch.inference_mode()
def evaluate_source(model: nn.Module, source: BatchSource) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` (put in eval mode) over a split, in float32."""
    if len(source) == 0:
        return float("nan"), float("nan")
    model.eval()
    correct = 0
    loss_sum = 0.0  # summed on the host in float64 (MPS has no float64 tensors)
    for inputs, labels in source.in_order(EVAL_BATCH):
        logits = model(as_layout(inputs))
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(dim=1) == labels).sum())
    return correct / len(source), loss_sum / len(source)


def evaluate_model(model: nn.Module, x: Inputs, y: np.ndarray, *, device: torch.device | str = "cpu",
                   workers: int | None = None) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` (put in eval mode) on ``(x, y)`` (in memory or
    lazy), on the device the model is on."""
    with BatchSource(x, y, device=device, workers=workers) as source:
        return evaluate_source(model, source)
