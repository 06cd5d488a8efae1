"""A supernet on disk: a self-describing folder that a training fills epoch by epoch and an estimator reads.

Layout of ``supernets/NAME/``:

* ``meta.json`` — what the supernet is (space and its options, data set and its key, recipe, sampling rule,
  seed), how far its training got (``epochs_done``, per-epoch ``history``), the hwnas version, and, once
  finished, the SHA-256 ``checksum`` of ``weights.pt``; the checksum is the supernet's identity in the
  evaluation store.
* ``checkpoint.pt`` — weights and optimizer state after the last finished epoch (a training resumes there).
* ``weights.pt`` — the finished supernet's weights.

Every file is written atomically, and ``.pt`` files are read with ``torch.load(weights_only=True)``: opening
someone else's supernet never runs their code.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hwnas.io import atomic_write_bytes, atomic_write_json, read_json_object
from hwnas.supernet.base import SupernetError

FORMAT = "hwnas-supernet"
FORMAT_VERSION = 1
META = "meta.json"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"
SAMPLINGS = ("sandwich", "uniform")


@dataclass(frozen=True)
class SupernetSettings:
    """How sub-networks are sampled while the supernet trains.

    Attributes:
        sampling: ``"uniform"`` (one random sub-network per step; SPOS; the default: on cluttered-digits it
            ranked as well as the sandwich rule at equal training time, with estimates on the trainings'
            scale) or ``"sandwich"`` (every step trains the largest, the smallest and ``random_per_step``
            random sub-networks, gradients summed; BigNAS).
        random_per_step: Random sub-networks per step of the sandwich rule.
        distill: In-place distillation (sandwich only): the smaller sub-networks learn the largest one's soft
            predictions instead of the labels.
        seed: Seed of the weights, the batch order, the augmentation and the sampled sub-networks.
        largest_epochs: The first epochs train the largest sub-network alone (the first phase of Once-for-All's
            progressive shrinking: the shared weights learn the task once before sub-networks share them).
    """

    sampling: str = "uniform"
    random_per_step: int = 2
    distill: bool = True
    seed: int = 0
    largest_epochs: int = 0

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise SupernetError(f"sampling {self.sampling!r} is not one of {list(SAMPLINGS)}")
        if not 0 <= int(self.random_per_step) <= 16:
            raise SupernetError(f"random_per_step must be in 0..16, got {self.random_per_step}")
        if int(self.largest_epochs) < 0:
            raise SupernetError(f"largest_epochs must be >= 0, got {self.largest_epochs}")

    def to_dict(self) -> dict[str, Any]:
        settings = {"sampling": self.sampling, "random_per_step": int(self.random_per_step),
                    "distill": bool(self.distill), "seed": int(self.seed)}
        if self.largest_epochs:  # absent when 0: supernets made before the option keep their identity
            settings["largest_epochs"] = int(self.largest_epochs)
        return settings


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_tensors(path: Path, obj: dict) -> None:
    """``torch.save`` of a dict of tensors and plain values, written atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_tensors(path: Path, *, what: str) -> dict:
    """The dict :func:`save_tensors` wrote; one clear :class:`SupernetError` if it is missing or corrupt.
    Loaded with ``weights_only=True``: a crafted file cannot run code."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SupernetError(f"{path} not found (no {what})") from None
    except Exception as exc:  # noqa: BLE001 - pickle, zip and type errors all mean "not a valid file"
        raise SupernetError(f"{path} is corrupt ({what}): {str(exc).splitlines()[0][:200]}") from None
    if not isinstance(data, dict):
        raise SupernetError(f"{path} is corrupt ({what}): not a dictionary")
    return data


class SupernetFolder:
    """A supernet folder (see the module docstring).

    Args:
        path: The folder.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @property
    def meta_file(self) -> Path:
        return self.path / META

    @property
    def checkpoint_file(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def weights_file(self) -> Path:
        return self.path / WEIGHTS

    @property
    def exists(self) -> bool:
        return self.meta_file.is_file()

    def read_meta(self) -> dict[str, Any]:
        """``meta.json``, checked: an hwnas supernet of a version this hwnas reads."""
        if self.path.exists() and not self.path.is_dir():
            raise SupernetError(f"{self.path} is a file, not a supernet folder")
        if not self.exists:
            raise SupernetError(f"{self.path} is not a supernet folder (no {META}); make one with "
                                f"'hwnas supernet train -o {self.path}'")
        meta = read_json_object(self.meta_file, error=SupernetError, what="supernet metadata")
        if meta.get("format") != FORMAT:
            raise SupernetError(f"{self.meta_file} is not hwnas supernet metadata")
        if not isinstance(meta.get("format_version"), int) or meta["format_version"] > FORMAT_VERSION:
            raise SupernetError(f"{self.meta_file}: format version {meta.get('format_version')!r} is not one "
                                f"this hwnas reads (<= {FORMAT_VERSION}); upgrade hwnas")
        for key, kind in (("space", str), ("space_options", dict), ("dataset_key", str), ("input_shape", list),
                          ("num_classes", int), ("recipe", dict), ("settings", dict), ("epochs_done", int)):
            if not isinstance(meta.get(key), kind):
                raise SupernetError(f"{self.meta_file} is corrupt: {key!r} is missing or not a {kind.__name__}")
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.meta_file, {"format": FORMAT, "format_version": FORMAT_VERSION, **meta})

    def finished_meta(self) -> dict[str, Any]:
        """The metadata of a finished supernet whose weights match its checksum."""
        meta = self.read_meta()
        if not meta.get("finished"):
            raise SupernetError(f"supernet {self.path} is not finished ({meta['epochs_done']} of "
                                f"{meta['recipe'].get('epochs')} epochs); resume it with 'hwnas supernet train "
                                f"-o {self.path}'")
        if not self.weights_file.is_file():
            raise SupernetError(f"{self.weights_file} not found (no supernet weights)")
        if sha256_file(self.weights_file) != meta.get("checksum"):
            raise SupernetError(f"{self.weights_file} does not match the checksum in {self.meta_file} "
                                "(changed or corrupt)")
        return meta
