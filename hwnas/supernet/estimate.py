"""Sub-network evaluation: a supernet's estimate of an architecture's validation accuracy.

For each architecture: its weights are copied out of the supernet (``extract``, either space's supernet), its
batch-norm statistics are recalibrated on a fixed set of training images (a sub-network's activations differ
from the mixture the shared statistics saw while training; Once-for-All, BigNAS), and it is scored on a fixed
random subset of the validation split (``score_images``, 1,000 by default; ``None``: all of it) with
onnxruntime (2-3x faster than PyTorch on CPU for these depthwise networks). Recalibrating inside onnxruntime
too (one training-mode export, BN statistics read from its outputs) was tried and measured no faster than
PyTorch's channels-last pass (0.93 vs 0.90 s per sub-network with the export): onnxruntime's training-mode
BatchNormalization is not fused with the convolutions.

As an :class:`~hwnas.training.evaluator.Evaluator`, the estimator stores its results in the evaluation store
as their own source (``"supernet"``) under the protocol ``sn-<checksum>-c<calibration>[-v<scored>]`` at fidelity
0 epochs: never mixed with full trainings, and found again by anyone using the same supernet and settings.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.arch import Arch
from hwnas.data.base import Dataset
from hwnas.onnx_export import calibrate_batchnorm, cpu_session, to_onnx_bytes
from hwnas.spaces.base import SearchSpace
from hwnas.supernet.base import SupernetError
from hwnas.supernet.folder import SupernetFolder
from hwnas.supernet.weights import load_supernet
from hwnas.training.evaluator import Evaluator
from hwnas.training.recipe import Recipe
from hwnas.training.trainer import TrainResult, as_layout, training_subset

CALIBRATION_IMAGES = 64
CALIBRATION_BATCH = 128
SCORE_IMAGES = 1000
SCORE_BATCH = 500


def calibration_images(dataset: Dataset, recipe: Recipe, count: int = CALIBRATION_IMAGES) -> np.ndarray:
    """The fixed calibration images: the first ``count`` of the training subset in a permutation drawn from
    the split seed (the same for every architecture)."""
    splits = dataset.splits(recipe.split_seed)
    x, _ = training_subset(splits, recipe.data_fraction, recipe.split_seed)
    order = np.random.default_rng([int(recipe.split_seed), 0xCA1]).permutation(len(x))
    return np.ascontiguousarray(x[order[:count]])


def scoring_subset(x_val: np.ndarray, y_val: np.ndarray, count: int | None,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random subset of ``count`` validation examples (all of them for ``None`` or more than there
    are), drawn from the split seed and kept in split order: the same for every architecture. Random, not the
    first ``count``: a split may be sorted by class."""
    if count is None or count >= len(x_val):
        return np.ascontiguousarray(x_val), y_val
    keep = np.sort(np.random.default_rng([int(seed), 0x5C0]).choice(len(x_val), int(count), replace=False))
    return np.ascontiguousarray(x_val[keep]), y_val[keep]


class SupernetEstimator(Evaluator):
    """Estimates validation accuracy with a trained supernet.

    Args:
        folder: A finished supernet folder (checked against its checksum).
        threads: CPU threads (1 by default).
        device: Where the sub-networks are recalibrated and scored (:mod:`hwnas.training.device`): the CPU scores
            with onnxruntime by default; a GPU with PyTorch (the ``torch`` backend).
        calibration_images: Training images the batch-norm statistics are recalibrated on. 64 ranked the
            reference architectures as well as 128 and 256 (``benchmarks/supernet.py``) at 1.35x the rate of 256.
        score_images: Validation images scored (a fixed random subset; ``None``: the whole split). 1,000
            rank the reference architectures as well as 2,000 (``benchmarks/supernet.py``) at half the cost.
        backend: ``"onnxruntime"`` (default) or ``"torch"`` for the scoring pass.
    """

    source = "supernet"

    def __init__(self, folder: SupernetFolder | str, *, threads: int | None = None,
                 calibration_images: int = CALIBRATION_IMAGES, score_images: int | None = SCORE_IMAGES,
                 backend: str = "onnxruntime", device: str = "cpu") -> None:
        from hwnas.training.trainer import DEFAULT_THREADS, training_device

        super().__init__()
        self.device = training_device(device)
        self.supernet = load_supernet(folder)
        self.seed = int(self.meta["settings"]["seed"])  # the store key's seed of every estimate
        self.threads = DEFAULT_THREADS if threads is None else int(threads)
        if backend not in ("onnxruntime", "torch"):
            raise SupernetError(f"backend {backend!r} is not one of ['onnxruntime', 'torch']")
        self.backend = backend if self.device.type == "cpu" else "torch"
        self.calibration_count = int(calibration_images)
        if self.calibration_count < 2:
            raise SupernetError("at least 2 calibration images are needed")
        self.score_count = None if score_images is None else int(score_images)
        if self.score_count is not None and self.score_count < 1:
            raise SupernetError("at least 1 validation image must be scored")
        self.recipe = Recipe.from_dict(self.meta["recipe"])
        self._data: tuple[str, np.ndarray, np.ndarray, np.ndarray] | None = None

    # the loaded supernet's parts, by their short names
    folder = property(lambda self: self.supernet.folder)
    meta = property(lambda self: self.supernet.meta)
    space = property(lambda self: self.supernet.space)
    net = property(lambda self: self.supernet.net)
    checksum = property(lambda self: self.supernet.checksum)

    # -- evaluator -------------------------------------------------------------------------------------------
    def protocol_key(self, recipe: Recipe) -> tuple[str, int, float]:
        """Keyed by the supernet (its checksum) and the calibration, not by the run's recipe."""
        scored = "" if self.score_count is None else f"-v{self.score_count}"
        on = "" if self.device.type == "cpu" else f"-{self.device.type}"  # a GPU's kernels: other numbers
        return f"sn-{self.checksum[:12]}-c{self.calibration_count}{scored}{on}", 0, 1.0

    def protocol(self, recipe: Recipe) -> dict[str, Any]:
        return {"supernet": self.checksum, "supernet_path": str(self.folder.path.resolve()),
                "calibration_images": self.calibration_count, "score_images": self.score_count,
                "supernet_recipe": self.meta["recipe"],
                "supernet_settings": self.meta["settings"]}

    def check_task(self, space: SearchSpace, dataset: Dataset) -> None:
        """Refuses a space or data set other than the supernet's."""
        self.supernet.check_task(space, dataset)

    def evaluate(self, space: SearchSpace, arch: Arch, dataset: Dataset, *, recipe: Recipe,
                 seed: int) -> TrainResult:
        self.check_task(space, dataset)
        return self.estimate(self.space.parse(arch.string), dataset)

    def estimate(self, arch: Arch, dataset: Dataset) -> TrainResult:
        """The supernet's validation accuracy and loss of ``arch`` (BN recalibrated)."""
        start = time.perf_counter()
        calibration, x_val, y_val = self._task_data(dataset)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            model = self.net.extract(arch).to(self.device, memory_format=torch.channels_last)
            calibrate_batchnorm(model, calibration, batch_size=CALIBRATION_BATCH, channels_last=True)
            logits = self._logits(model, x_val).cpu()
        finally:
            torch.set_num_threads(previous)
        labels = torch.from_numpy(y_val)
        accuracy = float((logits.argmax(dim=1) == labels).float().mean())
        loss = float(F.cross_entropy(logits, labels))
        params = sum(p.numel() for p in model.parameters())
        return TrainResult(val_accuracy=accuracy, val_loss=loss, params=int(params),
                           wall_time_s=time.perf_counter() - start, epochs=0, data_fraction=1.0,
                           source=self.source, threads=self.threads, device=str(self.device))

    def _task_data(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Calibration images, validation inputs and labels of ``dataset`` (kept for the next estimate)."""
        if self._data is None or self._data[0] != dataset.key:
            splits = dataset.splits(self.recipe.split_seed)
            x_val, y_val = scoring_subset(splits.x_val, splits.y_val, self.score_count, self.recipe.split_seed)
            self._data = (dataset.key, calibration_images(dataset, self.recipe, self.calibration_count),
                          x_val, y_val)
        return self._data[1:]

    @torch.no_grad()
    def _logits(self, model: nn.Module, x: np.ndarray) -> torch.Tensor:
        if self.backend == "torch":
            return torch.cat([model(as_layout(torch.from_numpy(x[b:b + SCORE_BATCH]).to(self.device)))
                              for b in range(0, len(x), SCORE_BATCH)])
        plain = model.to(memory_format=torch.contiguous_format)
        session = cpu_session(to_onnx_bytes(plain, x.shape[1:], dynamic_batch=True), threads=self.threads)
        name = session.get_inputs()[0].name
        return torch.cat([torch.from_numpy(session.run(None, {name: x[b:b + SCORE_BATCH]})[0])
                          for b in range(0, len(x), SCORE_BATCH)])
