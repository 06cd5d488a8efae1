"""``hwnas export`` end to end: final training, checked export, re-measurement, optional int8, atomic write.

:func:`export_target` runs the steps in an order that loses nothing and writes nothing half-done:

1. check the output path can be written (before any training);
2. train on train+validation with the final recipe, test once (:mod:`hwnas.deploy.final`); from scratch, or
   from a supernet's weights for the architecture (``from_supernet``);
3. export with ``onnx.checker`` and parity on real test inputs, and run the *file* over the test split with
   onnxruntime (its accuracy is printed beside PyTorch's); for another runtime (``--runtime openvino``), convert
   to its own files (OpenVINO's IR), check their parity with PyTorch on the same inputs and run them over the
   test split too;
4. re-measure the shipped file in the run's runtime, under its conditions, on the run's device
   (:mod:`hwnas.devices`: this machine or its Ray node); for a device out of reach take the latency the search
   measured there and print the command that re-measures the file on it;
5. with ``quantize="int8"``, quantize, then measure the quantized file's accuracy and latency the same way;
6. write ``model.onnx``, ``model.pt`` (the runtime's files, and ``model.int8.onnx``) as one group of atomic
   renames.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hwnas.deploy.device import budget_verdict, confirm_latency, windows_note
from hwnas.deploy.evaluate import accuracy_of, file_digest
from hwnas.deploy.final import (PARITY_INPUTS, check_output_path, export_final, graph_module, parity_inputs,
                                runtime_parity, shipped_module, sibling, train_final, weights_bytes,
                                write_outputs)
from hwnas.devices import Device, open_device
from hwnas.runtimes import DEFAULT_RUNTIME, get_runtime
from hwnas.deploy.target import DeployError, ExportTarget, load_dataset
from hwnas.onnx_export import arch_metadata, set_metadata
from hwnas.shapes import format_input_shape
from hwnas.units import format_latency

logger = logging.getLogger(__name__)


@dataclass
class ExportedFile:
    """One written model (an ONNX file, or a runtime's files) and what was measured of it."""

    path: Path
    size_bytes: int
    test_accuracy: float
    latency_ms: float | None
    latency_source: str
    metadata: dict[str, str]
    runtime: str = DEFAULT_RUNTIME


@dataclass
class ExportSummary:
    """What :func:`export_target` produced."""

    model: ExportedFile
    weights_path: Path
    device: Device
    torch_test_accuracy: float
    parity_max_abs_error: float
    quantized: ExportedFile | None = None
    runtime_file: ExportedFile | None = None
    runtime_parity_max_abs_error: float | None = None
    agreement: float | None = None
    remote_commands: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


def _fmt_acc(value: float) -> str:
    return f"{100 * value:.2f}%"


def export_target(target: ExportTarget, output: str | Path, *, dynamic_batch: bool = False,
                  quantize: str | None = None, raw_input: bool = False, threads: int | None = None,
                  echo: Callable[[str], None] = logger.info, protocol: dict[str, Any] | None = None,
                  device: Device | None = None, from_supernet: str | Path | None = None, train_device: str = "auto",
                  loader_workers: int | None = None, force: bool = False) -> ExportSummary:
    """Trains, exports, measures and writes the final model of ``target`` (see the module docstring).

    Args:
        target: What to export (:func:`hwnas.deploy.target.resolve_target`).
        output: The ``.onnx`` path; the weights go beside it as ``<stem>.pt``, an int8 model as
            ``<stem>.int8.onnx``.
        dynamic_batch: Export with a symbolic batch dimension.
        quantize: None or ``"int8"``.
        raw_input: Put the input scaling in the graph: the model takes ``uint8`` NHWC pixels
            (:class:`hwnas.data.preprocess.Preprocess`).
        threads: CPU threads for training (1 by default).
        train_device: Where the final training runs (:mod:`hwnas.training.device`; ``auto``: a GPU when there
            is one); recorded in the model's metadata as ``train_device``.
        loader_workers: DataLoader workers of a streamed data set (None: the trainer's default).
        echo: Where progress lines go (``click.echo`` on the command line).
        protocol: Overrides of the latency protocol (tests use a short one).
        device: Where the shipped file is re-measured (:func:`hwnas.devices.open_device`; None: opened here
            from the target's device and profiles, never a Ray node).
        from_supernet: A finished supernet folder of the same space and data set: the final training starts
            from its weights for the architecture instead of a fresh initialisation.
        force: Write the output through a symbolic link (``--force``; never into a device or a FIFO).

    Raises:
        DeployError: the output cannot be written, the data do not match the run, or a step failed.
    """
    from hwnas.spaces import create_space

    from hwnas.training.trainer import training_device

    dataset_file = [target.dataset] if target.dataset and Path(target.dataset).is_file() else []
    out = check_output_path(output, force=force, inputs=dataset_file)
    train_on = training_device(train_device)  # an unusable device is one line before any work
    conditions = target.conditions
    runtime = get_runtime(conditions.runtime)
    runtime.require("cpu", conditions.precision)  # its files are made and checked here, before any training
    if quantize not in (None, "int8"):
        raise DeployError(f"unknown quantization {quantize!r} (known: int8)")
    if quantize and raw_input:
        raise DeployError("--raw-input and --quantize do not go together yet: quantize a float-input model")
    runtime.require_converter()
    if dynamic_batch and not runtime.dynamic_batch:
        raise DeployError(f"--dynamic-batch: runtime {runtime.name} converts the model for one batch size (the run's "
                          f"--batch-size {conditions.batch_size})")
    if runtime.name != DEFAULT_RUNTIME and out.suffix != ".onnx":
        raise DeployError(f"cannot write {out}: with runtime {runtime.name} the output is the ONNX file its files "
                          f"go beside; give a name ending in .onnx")
    companions = [".pt", *runtime.ship_suffixes, *([".int8.onnx"] if quantize else [])]
    for suffix in dict.fromkeys(s for s in companions if s != ".onnx"):  # written beside the model, checked alike
        check_output_path(sibling(out, suffix), force=force, inputs=dataset_file)
    if quantize and not runtime.runs_int8_onnx:
        raise DeployError(f"--quantize int8 writes an int8 ONNX file, which runtime {runtime.name} does not run")
    if quantize and target.conditions.precision != "fp32":
        raise DeployError("--quantize int8 needs a float32 model; this run measured at precision "
                          f"{target.conditions.precision}")
    try:
        space = create_space(target.space, **target.space_options)
    except TypeError as exc:
        raise DeployError(f"space {target.space!r} does not take the options {target.space_options}: "
                          f"{exc}") from None
    arch = space.parse(target.arch)
    dataset = load_dataset(target.dataset_spec())
    shape = tuple(int(d) for d in dataset.input_shape)
    if target.input_shape is not None and tuple(target.input_shape) != shape:
        raise DeployError(f"data set {target.dataset!r} now gives {format_input_shape(shape)} inputs, but "
                          f"the run searched at {format_input_shape(target.input_shape)}")
    if target.num_classes is not None and target.num_classes != dataset.num_classes:
        raise DeployError(f"data set {target.dataset!r} now has {dataset.num_classes} classes, the run had "
                          f"{target.num_classes}")
    preprocess = dataset.preprocess().as_raw() if raw_input else dataset.preprocess()
    splits = dataset.splits(target.recipe.split_seed)
    test_inputs = preprocess.model_inputs(splits.x_test)  # read batch by batch when the split is streamed
    test_inputs[:PARITY_INPUTS]  # checked before training: a raw model needs whole pixels
    device = device or open_device(target.device, profiles_dir=target.profiles_dir, conditions=conditions)

    recipe = target.recipe
    step = max(1, recipe.epochs // 10)  # about ten progress lines
    initial_state, origin = None, {}
    if from_supernet is not None:
        from hwnas.supernet.weights import load_supernet

        supernet = load_supernet(from_supernet)
        supernet.check_task(space, dataset)
        initial_state = supernet.subnetwork_state(arch)
        # the supernet by its folder's name and checksum: a shipped file holds no path of this machine
        origin = {"from_supernet": Path(from_supernet).resolve().name, "supernet_checksum": supernet.checksum}

    def on_epoch(epoch: int, loss: float) -> None:
        if epoch % step == 0 or epoch == recipe.epochs:
            echo(f"  epoch {epoch}/{recipe.epochs}  loss {loss:.4f}")

    start = f" from supernet {from_supernet}" if from_supernet is not None else ""
    echo(f"training {arch.string} ({target.space}) on {dataset.key} train+validation{start}: {recipe.epochs} "
         f"epoch(s), seed {target.seed}, on {train_on}")
    final = train_final(space, arch, dataset, recipe=recipe, seed=target.seed, threads=threads,
                        on_epoch=on_epoch, initial_state=initial_state, device=train_on,
                        loader_workers=loader_workers)
    echo(f"trained on {final.train_samples} images in {final.wall_time_s:.1f} s; test accuracy (PyTorch) "
         f"{_fmt_acc(final.test_accuracy)} on {final.test_samples} images")

    meta = {**_base_metadata(target, space, arch, dataset, final, dynamic_batch=dynamic_batch),
            "preprocess": preprocess.to_json(), **origin}
    model_bytes, report = export_final(final.model, preprocess, test_inputs, metadata=meta,
                                       batch_size=conditions.batch_size, dynamic_batch=dynamic_batch,
                                       precision=conditions.precision)
    parity = report.parity
    echo(f"exported: onnx.checker passed; onnxruntime vs PyTorch max abs error {parity.max_abs_error:.2g} "
         f"(tolerance {parity.tolerance:.2g}) on {parity.num_inputs} test images")
    onnx_eval = accuracy_of(model_bytes, test_inputs, splits.y_test)
    torch_acc = final.test_accuracy
    if conditions.precision == "fp16":  # the shipped model is the half-precision one
        from hwnas.training.trainer import evaluate_model

        torch_acc = evaluate_model(shipped_module(final.model, "fp16"), splits.x_test, splits.y_test)[0]
    echo(f"test accuracy of the ONNX file (onnxruntime): {_fmt_acc(onnx_eval.accuracy)} "
         f"({onnx_eval.correct}/{onnx_eval.total})")

    shipped, runtime_meta, runtime_file = {".onnx": model_bytes}, {}, None
    if runtime.name != DEFAULT_RUNTIME:
        shipped, runtime_meta, runtime_file, runtime_error = _runtime_files(
            runtime, graph_module(final.model, preprocess, conditions.precision), model_bytes, test_inputs,
            splits.y_test, conditions, out=out, input_shape=preprocess.input_shape(), dtype=preprocess.dtype,
            dynamic_batch=dynamic_batch, echo=echo)
    latency, source = _latency(shipped, shape, target, device, protocol, space=space, label="model",
                               echo=echo, graph_shape=preprocess.input_shape())
    files: dict[Path, bytes] = {}
    model_meta = {**meta, "test_accuracy": repr(float(torch_acc)), **_latency_meta(latency, source),
                  **runtime_meta}
    model_bytes = _with_metadata(model_bytes, model_meta)
    files[out] = model_bytes
    weights_path = sibling(out, ".pt")
    files[weights_path] = weights_bytes(final.model, {
        "arch": arch.string, "space": target.space, "space_options": target.space_options,
        "input_shape": list(shape), "num_classes": dataset.num_classes,
        "class_names": list(dataset.class_names),
        **shipped_dataset(target.dataset, dataset), "split_seed": recipe.split_seed,
        "test_accuracy": final.test_accuracy,
        "recipe": recipe.to_dict(), "seed": target.seed, "train_device": final.device, **origin})
    summary = ExportSummary(
        model=ExportedFile(out, len(model_bytes), float(torch_acc), latency, source, model_meta),
        weights_path=weights_path, device=device, torch_test_accuracy=final.test_accuracy,
        parity_max_abs_error=parity.max_abs_error)
    if runtime_file is not None:
        runtime_file.latency_ms, runtime_file.latency_source, runtime_file.metadata = latency, source, model_meta
        summary.runtime_file, summary.runtime_parity_max_abs_error = runtime_file, runtime_error
        files.update({sibling(out, suffix): data for suffix, data in shipped.items()})

    if quantize == "int8":
        q_bytes, summary.quantized, summary.agreement = _quantized(
            model_bytes, model_meta, splits, onnx_eval, shape, target, device, protocol, space,
            sibling(out, ".int8.onnx"), echo)
        files[summary.quantized.path] = q_bytes

    if not device.measurable:
        shipped_path = out if runtime.name == DEFAULT_RUNTIME else sibling(out, runtime.ship_suffixes[0])
        measured = [shipped_path] + ([summary.quantized.path] if summary.quantized else [])
        summary.remote_commands = [device.command(path.name, conditions) for path in measured]
    summary.paths = write_outputs(files)
    return summary


def _runtime_files(runtime, module, model_bytes: bytes, test_inputs, labels, conditions, *, out: Path, input_shape,
                   dtype: str, dynamic_batch: bool, echo):
    """The runtime's own files of the model, their parity with PyTorch and their test accuracy:
    ``(files, metadata entries, ExportedFile, parity error)``."""
    from hwnas.runtimes import RuntimeFailure

    try:
        files = runtime.ship(module, model_bytes, input_shape=input_shape, batch_size=conditions.batch_size,
                             input_dtype=dtype)
    except RuntimeFailure as exc:
        raise DeployError(f"cannot convert the model for {runtime.name}: {exc}") from None
    parity = runtime_parity(runtime, files, module, parity_inputs(test_inputs, batch_size=conditions.batch_size,
                                                                  dynamic_batch=dynamic_batch),
                            precision=conditions.precision)
    names = " + ".join(sibling(out, suffix).name for suffix in files)
    echo(f"converted for {runtime.name} {runtime.version()}: {names}; {runtime.name} vs PyTorch max abs error "
         f"{parity.max_abs_error:.2g} (tolerance {parity.tolerance:.2g})")
    evaluation = accuracy_of(files, test_inputs, labels, runtime=runtime.name)
    echo(f"test accuracy of the {runtime.name} file: {_fmt_acc(evaluation.accuracy)} "
         f"({evaluation.correct}/{evaluation.total})")
    meta = {"runtime": runtime.name, "runtime_version": str(runtime.version()),
            "runtime_files": json.dumps({suffix: file_digest(data) for suffix, data in files.items()}),
            "runtime_test_accuracy": repr(float(evaluation.accuracy))}
    path = sibling(out, runtime.ship_suffixes[0])
    exported = ExportedFile(path, sum(len(d) for d in files.values()), evaluation.accuracy, None, "", {},
                            runtime=runtime.name)
    return files, meta, exported, parity.max_abs_error


def _base_metadata(target: ExportTarget, space, arch, dataset, final, *,
                   dynamic_batch: bool) -> dict[str, str]:
    c = target.conditions
    return {
        **arch_metadata(space, arch, dataset.input_shape, dataset.num_classes),
        "space_options": json.dumps(target.space_options, sort_keys=True),
        **shipped_dataset(target.dataset, dataset), "dataset_key": dataset.key,
        "split_seed": str(target.recipe.split_seed),
        "dataset_options": json.dumps(dict(target.dataset_options), sort_keys=True),
        "dataset_input_shape": (format_input_shape(target.dataset_input_shape) if target.dataset_input_shape
                                else ""),
        "class_names": json.dumps(list(dataset.class_names)),
        "test_samples": str(final.test_samples), "train_samples": str(final.train_samples),
        "device": target.device, "runtime": c.runtime, "provider": c.provider, "threads": str(c.threads),
        "batch_size": str(c.batch_size),
        "precision": c.precision, "dynamic_batch": str(bool(dynamic_batch)).lower(),
        "latency_budget_ms": "none" if target.budget_ms is None else repr(float(target.budget_ms)),
        "recipe": json.dumps(target.recipe.to_dict(), sort_keys=True), "epochs": str(target.recipe.epochs),
        "seed": str(target.seed), "run_dir": Path(target.run_dir).name if target.run_dir else "",
        "quantization": "none",
        "train_device": final.device,
    }


def shipped_dataset(spec: str, dataset) -> dict[str, str]:
    """The data set as a shipped file names it (never by a path of this machine): a registered name as given
    (``dataset_source`` ``registered``), a user's folder or file (``cifar10:PATH`` too) by its name
    (``dataset_source`` ``path``; its key, recorded beside it, tells its content apart)."""
    from hwnas.data import DATASETS

    if spec in DATASETS:
        return {"dataset": spec, "dataset_source": "registered"}
    return {"dataset": dataset.name, "dataset_source": "path"}


def _latency_meta(latency: float | None, source: str) -> dict[str, str]:
    return {"latency_ms": "none" if latency is None else repr(float(latency)), "latency_source": source}


def _with_metadata(model_bytes: bytes, metadata: dict[str, str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(model_bytes)
    set_metadata(proto, metadata)
    return proto.SerializeToString()


def _latency(model, shape, target: ExportTarget, device: Device, protocol, *, space, label: str, echo,
             graph_shape=None) -> tuple[float | None, str]:
    """Re-measures ``model`` (ONNX bytes or the runtime's files) on ``device`` when it can measure; else the
    search's measurement on the device.

    ``shape`` is the data's ``(C, H, W)``; ``graph_shape`` one input of the graph when it differs (raw input).
    """
    c = target.conditions
    precision = "int8" if label.startswith("int8") else c.precision
    conditions = f"{c.runtime}, {c.provider}, {c.threads} thread(s), batch {c.batch_size}, {precision}"
    if device.measurable:
        stats, medians = confirm_latency(
            lambda: device.measure_file(model, graph_shape or shape, c, **(protocol or {})),
            expected_ms=_searched_latency(target) if label == "model" else None, budget_ms=target.budget_ms,
            echo=echo)
        here = device.where
        echo(f"latency of the {label} on {target.device} ({here}; {conditions}): "
             f"{format_latency(stats.median_ms)} median (p10 {format_latency(stats.p10_ms)}, p90 "
             f"{format_latency(stats.p90_ms)}, "
             f"{stats.runs} runs{windows_note(medians)}): "
             f"{budget_verdict(stats.median_ms, target.budget_ms)}")
        return stats.median_ms, f"measured at export on {target.device} ({here}{windows_note(medians)})"
    not_measured = f"not measured (device {target.device} cannot be measured from here)"
    if label != "model":
        echo(f"the {label} was not re-measured either ({device.reason})")
        return None, not_measured
    echo(f"device {target.device!r} cannot be measured from here ({device.reason}): the {label} was not "
         f"re-measured")
    known = _profile_latency(target, space, shape)
    if known is None:
        known = _searched_latency(target)
    if known is not None:
        echo(f"  the search measured this architecture on {target.device} at {format_latency(known)}: "
             f"{budget_verdict(known, target.budget_ms)}")
        return known, f"measured on {target.device} by the search (same architecture, {conditions})"
    if "latency_ms" in target.search:
        echo(f"  the search only predicted its latency on {target.device} ({target.search['latency_ms']:.4g} "
             f"ms): measure it there")
    return None, not_measured


def _searched_latency(target: ExportTarget) -> float | None:
    """The latency the search measured for the architecture (None when it only predicted it)."""
    if "latency_ms" in target.search and target.search.get("latency_measured", True):
        return float(target.search["latency_ms"])
    return None


def _profile_latency(target: ExportTarget, space, shape) -> float | None:
    from hwnas.devices import profile_name
    from hwnas.profiling.store import ProfileStore

    try:
        store = ProfileStore(target.profiles_dir, profile_name(target.device, target.conditions.runtime))
        if not store.exists:
            return None
        for record in store.records(space.name, shape, target.space_options):
            if record.get("arch") == target.arch:
                return float(record["median_ms"])
    except Exception as exc:  # a corrupt profile only loses this hint
        logger.warning("cannot read the profile of %r: %s", target.device, exc)
    return None


def _quantized(model_bytes, model_meta, splits, onnx_eval, shape, target, device, protocol, space, path, echo):
    from hwnas.deploy.quantize import calibration_inputs, quantize_int8

    echo("quantizing to int8 (static, QDQ, per-channel weights; calibrated on training images)")
    q_bytes = quantize_int8(model_bytes, calibration_inputs(splits.x_train, seed=target.seed))
    runtime = target.conditions.runtime
    q_eval = accuracy_of(q_bytes, splits.x_test, splits.y_test, runtime=runtime)
    agreement = float((q_eval.predictions == onnx_eval.predictions).mean())
    echo(f"int8 test accuracy ({runtime}): {_fmt_acc(q_eval.accuracy)} ({q_eval.correct}/{q_eval.total}); "
         f"{_fmt_acc(agreement)} of its predictions equal the float model's")
    latency, source = _latency(q_bytes, shape, target, device, protocol, space=space, label="int8 model",
                               echo=echo)
    float_only = ("runtime_files", "runtime_test_accuracy")  # the runtime's files are the float model's
    model_meta = {k: v for k, v in model_meta.items() if k not in float_only}
    meta = {**model_meta, "quantization": "int8", "test_accuracy": repr(float(q_eval.accuracy)),
            "float_test_accuracy": model_meta["test_accuracy"], "float_agreement": repr(agreement),
            **_latency_meta(latency, source)}
    q_bytes = _with_metadata(q_bytes, meta)
    return q_bytes, ExportedFile(path, len(q_bytes), q_eval.accuracy, latency, source, meta), agreement
