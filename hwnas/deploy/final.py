"""The final model: train on train+validation, test once, export with parity on real inputs, write atomically.

- :func:`train_final` trains the architecture with the final recipe on the union of the training and
  validation splits (the search needed validation to rank architectures; the shipped model need not hold it
  back) and measures it once on the test split.
- :func:`export_final` exports it with the project's one exporter (:func:`hwnas.onnx_export.export_model`:
  ``onnx.checker`` full check, onnxruntime-vs-PyTorch parity on *real* test inputs, failing above the
  tolerance). A run searched at ``fp16`` ships the half-precision model behind float32 input and output,
  the same wrapper its latencies were measured with.
- :func:`weights_bytes` is the ``.pt`` file: the state dict with what is needed to rebuild the model.
- :func:`write_outputs` writes every output file of one export as a group: all go to temporary files beside
  their targets first, and only when all are written are they renamed into place, so a failure leaves
  neither half-written files nor stray temporary files.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from hwnas import __version__
from hwnas.arch import Arch
from hwnas.data.base import Dataset, Splits
from hwnas.data.lazy import concatenate, take
from hwnas.deploy.target import DeployError
from hwnas.data.preprocess import Preprocess
from hwnas.onnx_export import ExportReport, ParityReport, RawInput, export_model
from hwnas.io import check_output_file, file_mode, refuse_special
from hwnas.spaces.base import SearchSpace
from hwnas.training.recipe import Recipe

logger = logging.getLogger(__name__)

#: Real test inputs used for the parity check (all of them when the split is smaller).
PARITY_INPUTS = 256
#: Parity tolerance (absolute, relative to the largest logit) of an fp32 / fp16 export.
TOLERANCES = {"fp32": (1e-4, 1e-3), "fp16": (1e-2, 1e-2)}


class TrainPlusValidation(Dataset):
    """A data set whose training split is ``train + validation`` of another (validation is left empty).

    Args:
        base: The data set of the search.
    """

    def __init__(self, base: Dataset) -> None:
        self.base = base
        self.name = base.name

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.base.input_shape)  # type: ignore[return-value]

    @property
    def class_names(self) -> list[str]:
        return list(self.base.class_names)

    @property
    def key(self) -> str:
        return f"{self.base.key}+val"

    def preprocess(self):
        return self.base.preprocess()

    def splits(self, seed: int = 0) -> Splits:
        s = self.base.splits(seed)
        return Splits(x_train=concatenate([s.x_train, s.x_val]),
                      y_train=np.concatenate([s.y_train, s.y_val]), x_val=take(s.x_val, slice(0, 0)),
                      y_val=s.y_val[:0],
                      x_test=s.x_test, y_test=s.y_test)


@dataclass
class FinalModel:
    """A trained final model.

    Attributes:
        model: The trained PyTorch model (eval mode, CPU).
        test_accuracy: PyTorch's top-1 accuracy on the test split.
        train_samples: Images trained on (train + validation).
        test_samples: Images in the test split.
        wall_time_s: Seconds the training took.
        train_loss: Mean training loss of the last epoch.
        device: The device it trained on (``cpu``, ``cuda:0``).
    """

    model: torch.nn.Module
    test_accuracy: float
    train_samples: int
    test_samples: int
    wall_time_s: float
    train_loss: float
    device: str = "cpu"


def train_final(space: SearchSpace, arch: Arch, dataset: Dataset, *, recipe: Recipe, seed: int = 0,
                threads: int | None = None, on_epoch: Callable[[int, float], None] | None = None,
                initial_state: Mapping[str, torch.Tensor] | None = None, device: str = "cpu",
                loader_workers: int | None = None) -> FinalModel:
    """Trains ``arch`` with ``recipe`` on train+validation and measures it on the test split, from scratch
    or from ``initial_state`` (a supernet's weights for it), on the training ``device``.

    Raises:
        DeployError: training diverged (non-finite loss).
    """
    from hwnas.training import train

    merged = TrainPlusValidation(dataset)
    result = train(space, arch, merged, recipe=recipe, seed=seed, threads=threads, report_test=True,
                   return_model=True, on_epoch=on_epoch, initial_state=initial_state, device=device,
                   loader_workers=loader_workers)
    if not np.isfinite(result.train_loss):
        raise DeployError(f"the final training of {arch.string} diverged (loss {result.train_loss}); try "
                          f"fewer epochs or another --seed")
    sizes = merged.splits(recipe.split_seed).sizes()
    return FinalModel(model=result.model, test_accuracy=float(result.test_accuracy), train_samples=sizes[0],
                      test_samples=sizes[2], wall_time_s=result.wall_time_s, train_loss=result.train_loss,
                      device=result.device or "cpu")


def shipped_module(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """The module that is exported: the model itself, or its half-precision version for ``fp16``."""
    if precision == "fp16":
        import copy

        from hwnas.profiling.measure import _HalfPrecision

        return _HalfPrecision(copy.deepcopy(model)).eval()
    return model.eval()


def graph_module(model: torch.nn.Module, preprocess: Preprocess, precision: str) -> torch.nn.Module:
    """The module whose graph ships: :func:`shipped_module`, behind the input scaling of a raw-input model."""
    module = shipped_module(model, precision)
    if preprocess.raw_input:
        module = RawInput(module, float(preprocess.pixel_max)).eval()
    return module


@torch.no_grad()
def runtime_parity(runtime, files: Mapping[str, bytes], module: torch.nn.Module, inputs: np.ndarray, *,
                   precision: str) -> ParityReport:
    """``runtime`` running ``files`` against PyTorch's ``module`` on ``inputs`` (:func:`parity_inputs`), batch
    by batch as the files take them, with the ONNX export's tolerance (:data:`TOLERANCES`: ``atol + rtol *
    max|PyTorch output|``).

    Raises:
        DeployError: the error exceeds the tolerance, or the runtime cannot run the files.
    """
    from hwnas.deploy.evaluate import predict

    atol, rtol = TOLERANCES[precision]
    expected = module.eval()(torch.from_numpy(inputs)).float().numpy()
    got = predict(files, inputs, runtime=runtime.name)
    report = ParityReport(max_abs_error=float(np.max(np.abs(got - expected))),
                          tolerance=atol + rtol * float(np.max(np.abs(expected))), num_inputs=len(inputs))
    if not report.ok:
        raise DeployError(f"{runtime.name}'s output differs from PyTorch by {report.max_abs_error:.3g} (tolerance "
                          f"{report.tolerance:.3g}) on {len(inputs)} test inputs")
    return report


def export_final(model: torch.nn.Module, preprocess: Preprocess, test_inputs: np.ndarray, *,
                 metadata: Mapping[str, str], batch_size: int = 1, dynamic_batch: bool = False,
                 precision: str = "fp32") -> tuple[bytes, ExportReport]:
    """Exports the shipped module (checked, parity on up to :data:`PARITY_INPUTS` real test inputs).

    Args:
        model: The trained model.
        preprocess: Its inputs; a raw-input one puts the scaling in the graph (:class:`~hwnas.onnx_export.RawInput`).
        test_inputs: Test inputs in the form the exported model takes (:meth:`Preprocess.model_inputs`).

    Returns:
        The serialised ONNX model (metadata included) and the exporter's report.
    """
    atol, rtol = TOLERANCES[precision]
    module = graph_module(model, preprocess, precision)
    return export_model(module, preprocess.input_shape(), None, metadata=metadata,
                        batch_size=batch_size, dynamic_batch=dynamic_batch,
                        parity_inputs=parity_inputs(test_inputs, batch_size=batch_size, dynamic_batch=dynamic_batch),
                        atol=atol, rtol=rtol, input_dtype=preprocess.dtype)


def parity_inputs(test_inputs, *, batch_size: int, dynamic_batch: bool) -> np.ndarray:
    """The real test inputs a parity check runs: up to :data:`PARITY_INPUTS`, a whole number of batches of a
    fixed-batch model.

    Raises:
        DeployError: too few for one batch.
    """
    count = len(test_inputs) if dynamic_batch else (len(test_inputs) // batch_size) * batch_size
    inputs = np.ascontiguousarray(test_inputs[: min(PARITY_INPUTS, count)])
    if len(inputs) == 0:
        raise DeployError(f"the test split has {len(test_inputs)} input(s): too few for a parity check at "
                          f"batch size {batch_size}")
    return inputs


def weights_bytes(model: torch.nn.Module, info: Mapping[str, Any]) -> bytes:
    """The ``.pt`` file: ``{"state_dict": ..., **info}`` serialised with :func:`torch.save`.

    Load it with ``torch.load(path, weights_only=True)`` and rebuild the model with
    ``create_space(d["space"], **d["space_options"]).build(space.parse(d["arch"]), d["input_shape"],
    d["num_classes"])``.
    """
    buffer = io.BytesIO()
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    plain = json.loads(json.dumps(dict(info)))  # only plain types: loadable with weights_only=True
    torch.save({"state_dict": state, "hwnas_version": __version__, **plain}, buffer)
    return buffer.getvalue()


def check_output_path(path: str | os.PathLike, *, force: bool = False,
                      inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Checks, before any work, that ``path`` can be written (:func:`hwnas.io.check_output_file`: with
    ``force`` through a symbolic link, never over a device, a file of an hwnas folder or one of ``inputs``);
    creates its missing parent folders; returns the path to write.

    Raises:
        DeployError: a parent is a file, ``path`` is a folder, a device or a link, or the folder is not writable.
    """
    target = check_output_file(path, force=force, inputs=inputs, what="model", error=DeployError)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        blocking = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise DeployError(f"cannot write {target}: {blocking} is a file, not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeployError(f"cannot write {target}: cannot create {folder}: {exc.strerror or exc}") from None
        logger.info("created %s for the model", folder)
    if target.is_dir():
        raise DeployError(f"cannot write {target}: it is a folder; give a file name such as "
                          f"{target / 'model.onnx'}")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DeployError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def write_outputs(files: Mapping[str | os.PathLike, bytes]) -> list[Path]:
    """Writes every ``path -> bytes`` as a group: temporary files first (fsynced), then renames.

    Nothing is renamed unless every temporary file was written; on failure all temporary files are removed.

    Raises:
        DeployError: a file cannot be written.
    """
    staged: list[tuple[Path, Path]] = []
    mode = file_mode()
    try:
        for path, data in files.items():
            target = Path(path)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            staged.append((Path(tmp), target))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)  # mkstemp makes private files; an exported model is an ordinary file
        for tmp, target in staged:
            refuse_special(target)  # a device or FIFO made since the check is never renamed over
            os.replace(tmp, target)
    except OSError as exc:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        raise DeployError(f"cannot write the exported files: {where}{exc.strerror or exc}") from None
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise
    return [target for _, target in staged]


def sibling(path: Path, suffix: str) -> Path:
    """``model.onnx`` -> ``model<suffix>`` (``.pt``, ``.int8.onnx``)."""
    name = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    return path.with_name(name + suffix)
