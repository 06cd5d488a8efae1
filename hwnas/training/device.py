"""The training device: one name everywhere (``--train-device``, ``RunConfig.train_device``, ``train(device=)``).

Names: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` and ``mps``. ``auto`` is the GPU Ray assigned to this job (a
training run as a Ray task with ``--gpus-per-training``), else the first CUDA device when there is one, else
the CPU. Everything here is device-agnostic: nothing imports CUDA code unless a CUDA device is asked for.

- :func:`check_name` checks the spelling (a configuration, a command-line option);
- :func:`resolve` turns a name into the :class:`torch.device` a training runs on here, refusing an unusable
  one with one line (:class:`DeviceError`) before any work starts;
- :func:`kind` is what a name means for the results (``cpu``, ``cuda`` or ``mps``): the part of the device that
  goes into the evaluation store's key, since a GPU's kernels do not give a CPU's numbers bit for bit.
"""

from __future__ import annotations

import os
import re
import sys

import torch

from hwnas.errors import HwnasError

#: The names a training device may have (``cuda:N`` for any N).
DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")
#: The training device of every command and of ``RunConfig`` unless told otherwise.
DEFAULT_DEVICE = "auto"
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class DeviceError(HwnasError, ValueError):
    """A training device is misspelt or unusable here."""


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def check_name(name: object) -> str:
    """``name`` if it is a training device's name (case and spaces normalised).

    Raises:
        DeviceError: it is not one of :data:`DEVICE_NAMES`.
    """
    text = str(name).strip().lower() if isinstance(name, str) else ""
    if not _PATTERN.match(text):
        raise DeviceError(f"train device {name!r} is not one of {', '.join(DEVICE_NAMES)}")
    return text


def ray_gpu_ids() -> list[str]:
    """The GPU ids Ray assigned to the task running in this process (empty outside Ray or without GPUs).

    Ray is not imported for this: a process that has not imported it runs no Ray task."""
    ray = sys.modules.get("ray")
    if ray is None or not hasattr(ray, "is_initialized") or not ray.is_initialized():
        return []
    try:
        return [str(i) for i in ray.get_gpu_ids()]
    except Exception:  # noqa: BLE001 - a driver, or a Ray that cannot say: no assignment
        return []


def _ray_cuda_index(ids: list[str]) -> int:
    """The CUDA index, in this process, of the first GPU Ray assigned (Ray narrows ``CUDA_VISIBLE_DEVICES`` to
    the assigned GPUs unless told not to, so it is usually 0)."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if ids[0] in visible:
        return visible.index(ids[0])
    return int(ids[0]) if not visible and ids[0].isdigit() else 0


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve(name: str) -> torch.device:
    """The device a training named ``name`` runs on here.

    Raises:
        DeviceError: the name is unknown, or the device is not usable here (no CUDA build, no GPU visible,
            index out of range, no MPS), in one line that says what to use instead.
    """
    name = check_name(name)
    if name == "auto":
        ids = ray_gpu_ids()
        if ids:
            if not _cuda_count():
                raise DeviceError(f"Ray assigned GPU {ids[0]} to this training, but PyTorch sees no CUDA device "
                                  f"here ({_cuda_note()})")
            return torch.device("cuda", _ray_cuda_index(ids))
        return torch.device("cuda", 0) if _cuda_count() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise DeviceError("--train-device mps: no Apple MPS device is usable here; use --train-device cpu "
                              "or auto")
        return torch.device("mps")
    count = _cuda_count()
    index = int(name.split(":", 1)[1]) if ":" in name else 0
    if count == 0:
        raise DeviceError(f"--train-device {name}: no CUDA device is usable here ({_cuda_note()}); use "
                          f"--train-device cpu or auto")
    if index >= count:
        raise DeviceError(f"--train-device {name}: this machine has {count} CUDA device(s) "
                          f"(cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def _cuda_note() -> str:
    if torch.version.cuda is None:
        return f"PyTorch {torch.__version__} is a CPU-only build"
    return f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) finds no GPU"


def kind(name: str, *, ray_gpus: float = 0.0) -> str:
    """What training on ``name`` means for its results: ``cpu``, ``cuda`` or ``mps``.

    ``auto`` is ``cuda`` when the training is given Ray GPUs (``ray_gpus`` > 0, resolved in the Ray task),
    else what it resolves to here.
    """
    name = check_name(name)
    if name == "auto":
        return "cuda" if ray_gpus > 0 else resolve(name).type
    return name.split(":", 1)[0]

