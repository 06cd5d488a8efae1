"""The training recipe: every setting that decides what a training run produces, in one frozen dataclass.

A :class:`Recipe` is hashable and has a stable :meth:`Recipe.hash` over its *protocol* fields (everything but
the fidelity), so evaluations made with the same recipe can be found again in the evaluation store. The two
*fidelity* fields, ``epochs`` and ``data_fraction``, are kept apart: a cheap partial training (fewer epochs, a
share of the training split) is the same recipe at a lower fidelity, and the store keys it by both.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from hwnas.errors import HwnasError
from hwnas.shapes import MAX_BATCH, MAX_EPOCHS, MAX_SEED

OPTIMIZERS = ("sgd", "adamw")
AUGMENTATIONS = ("none", "shift", "crop-flip")
AMP_MODES = ("off", "bf16", "fp16")
FIDELITY_FIELDS = ("epochs", "data_fraction")
#: Settings added after recipes were first stored, with their defaults: a recipe at such a default hashes as
#: it did before the setting existed, so the evaluations stored under it are still found.
LATER_DEFAULTS = {"crop_padding": 4, "amp": "off"}


class RecipeError(HwnasError, ValueError):
    """A recipe setting is out of range or unknown."""


@dataclass(frozen=True)
class Recipe:
    """A standard image-classification recipe (defaults tuned on the ``digits`` task; see the README).

    Attributes:
        optimizer: ``"sgd"`` (Nesterov momentum) or ``"adamw"``.
        lr: Peak learning rate, reached after the warm-up and annealed to 0 with a cosine schedule per step.
        momentum: SGD momentum (ignored by AdamW, which uses its default betas).
        weight_decay: Decoupled (AdamW) or L2 (SGD) weight decay; not applied to biases and norm layers.
        label_smoothing: Label smoothing of the training loss (validation loss is plain cross-entropy).
        batch_size: Mini-batch size; the last partial batch of an epoch is dropped when it is smaller than
            half a batch (a batch-norm layer cannot train on one sample).
        warmup_epochs: Epochs of linear learning-rate warm-up (may be fractional).
        augment: ``"none"``, ``"shift"`` (random translation by up to ``shift_pixels``, edges replicated) or
            ``"crop-flip"`` (random crop of the image zero-padded by ``crop_padding``, and a horizontal flip with
            probability 1/2: the CIFAR standard for natural images; see :mod:`hwnas.training.augment`).
        shift_pixels: Largest translation of the ``"shift"`` augmentation.
        crop_padding: Zero padding of the ``"crop-flip"`` augmentation (4 for 32x32 CIFAR images).
        amp: Mixed precision of the training's forward pass: ``"off"`` (float32), ``"bf16"`` (bfloat16, on a
            GPU or the CPU) or ``"fp16"`` (float16 with loss scaling, GPU only). Evaluation is in float32.
        split_seed: Seed of the data set's train/validation/test split. Fixed across architectures and
            training seeds, so that every validation accuracy is measured on the same images.
        epochs: Fidelity: passes over the (possibly reduced) training split.
        data_fraction: Fidelity: share of the training split used, drawn per class from ``split_seed``.
    """

    optimizer: str = "adamw"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    batch_size: int = 32
    warmup_epochs: float = 1.0
    augment: str = "none"
    shift_pixels: int = 1
    crop_padding: int = 4
    amp: str = "off"
    split_seed: int = 0
    epochs: int = 15
    data_fraction: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):  # types first: "-R lr=abc" is one clear line, never a comparison error
            value = getattr(self, f.name)
            kind = f.type if isinstance(f.type, type) else {"str": str, "int": int, "float": float}[f.type]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
            elif kind is int and isinstance(value, float) and value.is_integer():
                object.__setattr__(self, f.name, int(value))
            elif not isinstance(value, kind) or isinstance(value, bool):
                what = {str: "text", float: "a number", int: "a whole number"}[kind]
                raise RecipeError(f"recipe {f.name}={value!r} must be {what}")
            if kind is float and not math.isfinite(getattr(self, f.name)):
                raise RecipeError(f"recipe {f.name}={value!r} must be finite")
        if self.optimizer not in OPTIMIZERS:
            raise RecipeError(f"optimizer {self.optimizer!r} is not one of {list(OPTIMIZERS)}")
        if self.augment not in AUGMENTATIONS:
            raise RecipeError(f"augmentation {self.augment!r} is not one of {list(AUGMENTATIONS)}")
        if self.amp not in AMP_MODES:
            raise RecipeError(f"amp {self.amp!r} is not one of {list(AMP_MODES)}")
        checks = [
            ("lr", self.lr > 0 and math.isfinite(self.lr), "must be positive"),
            ("momentum", 0 <= self.momentum < 1, "must be in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "must be in [0, 1)"),
            ("batch_size", 2 <= self.batch_size <= MAX_BATCH, f"must be in 2..{MAX_BATCH}"),
            ("warmup_epochs", self.warmup_epochs >= 0, "must be >= 0"),
            ("shift_pixels", self.shift_pixels >= 0, "must be >= 0"),
            ("crop_padding", 0 <= self.crop_padding <= 64, "must be in [0, 64]"),
            ("epochs", 1 <= self.epochs <= MAX_EPOCHS, f"must be in 1..{MAX_EPOCHS}"),
            ("warmup_epochs", self.warmup_epochs <= MAX_EPOCHS, f"must be <= {MAX_EPOCHS}"),
            ("shift_pixels", self.shift_pixels <= 64, "must be in [0, 64]"),
            ("split_seed", 0 <= self.split_seed <= MAX_SEED, f"must be in 0..{MAX_SEED}"),
            ("data_fraction", 0 < self.data_fraction <= 1, "must be in (0, 1]"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise RecipeError(f"recipe {name}={getattr(self, name)!r} {why}")
        # Normalise number types so that equal recipes hash equally (lr=1 and lr=1.0).
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float) and isinstance(value, int):
                object.__setattr__(self, f.name, float(value))

    def protocol(self) -> dict[str, Any]:
        """The recipe's settings without the fidelity fields (and without a later setting at its default:
        see :data:`LATER_DEFAULTS`)."""
        return {k: v for k, v in asdict(self).items()
                if k not in FIDELITY_FIELDS and not (k in LATER_DEFAULTS and LATER_DEFAULTS[k] == v)}

    def hash(self, **extra: Any) -> str:
        """Stable 12-hex-digit id of the protocol (every field except ``epochs`` and ``data_fraction``), and of
        ``extra`` settings that change results beside it (the training device's kind when not the CPU)."""
        text = json.dumps({**self.protocol(), **extra}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]

    @property
    def fidelity(self) -> str:
        """Human-readable fidelity, e.g. ``"20ep"`` or ``"5ep@0.25"``."""
        return format_fidelity(self.epochs, self.data_fraction)

    def with_fidelity(self, *, epochs: int | None = None, data_fraction: float | None = None) -> "Recipe":
        """The same protocol at another fidelity."""
        return replace(self, epochs=self.epochs if epochs is None else int(epochs),
                       data_fraction=self.data_fraction if data_fraction is None else float(data_fraction))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(f"unknown recipe setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**data)


def complete_recipe(data: dict[str, Any]) -> dict[str, Any]:
    """A stored recipe with the settings added since it was stored at their defaults (for comparing a recipe
    stored by an older hwnas with today's); a dict that is no recipe is returned as it is."""
    try:
        return Recipe.from_dict(dict(data)).to_dict()
    except (RecipeError, TypeError):
        return dict(data)


def format_fidelity(epochs: int, data_fraction: float) -> str:
    """``(20, 1.0) -> "20ep"``, ``(5, 0.25) -> "5ep@0.25"``."""
    return f"{int(epochs)}ep" if float(data_fraction) == 1.0 else f"{int(epochs)}ep@{float(data_fraction):g}"


DEFAULT_RECIPE = Recipe()
