"""``hwnas export``: a search's best architecture, trained, as a checked ONNX model; ``hwnas evaluate``.

::

    hwnas export runs/digits -o model.onnx                    # the run's best, final recipe, re-measured
    hwnas export -o m.onnx --arch "16:k3e1/..." --space mobilenet --dataset digits --epochs 30
    hwnas evaluate model.onnx                                # accuracy of the file over the test split
    hwnas evaluate model.onnx --dataset other_images/        # over every image of another folder
    hwnas evaluate model.onnx --latency-only --threads 4     # on the device: latency of the copied file
    hwnas export runs/ov -o model.onnx                       # a run searched with --runtime openvino: + model.xml
    hwnas evaluate model.xml                                 # the OpenVINO IR, run by OpenVINO
"""

from __future__ import annotations

from pathlib import Path

import click

from hwnas.cli.common import (BATCH_SIZE, EPOCHS, INPUT_SHAPE, SEED, THREADS, force_option, parse_space_options,
                              print_json, progress_echo)
from hwnas.cli.run_options import ray_option
from hwnas.cli.train_cmds import THREADS_HELP, device_options
from hwnas.runtimes.onnxruntime import provider_names
from hwnas.units import format_latency


def _runtime_names() -> list[str]:
    from hwnas.runtimes import RUNTIMES

    return RUNTIMES.names()


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


@click.command("export")
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The ONNX file to write; the PyTorch weights go beside it as <name>.pt.")
@click.option("--epochs", type=EPOCHS,
              help="Epochs of the final training [default: 3x the search recipe's epochs].")
@click.option("--arch", help="Export this architecture (canonical string) instead of the run's best.")
@click.option("--space", "space_name", help="Space of --arch [default: the run's, else mobilenet].")
@click.option("--space-option", "-O", "space_option", multiple=True, metavar="KEY=VALUE",
              help="Keyword argument of the space's constructor (with --arch).")
@click.option("--dataset", metavar="NAME|FOLDER|FILE.npz",
              help="Data set of --arch: a registered name, an image folder or a .npz [default: the run's, else "
                   "digits].")
@click.option("--dataset-option", "-D", "dataset_option", multiple=True, metavar="KEY=VALUE",
              help="Keyword argument of --dataset, e.g. -D val_fraction=0.3.")
@click.option("--input-shape", type=INPUT_SHAPE, help="With an image-folder --dataset: the CxHxW its images are "
                                                      "converted to [default: 3x32x32].")
@click.option("--dynamic-batch", is_flag=True, help="Export with a symbolic batch dimension.")
@click.option("--raw-input", is_flag=True,
              help="Bake the input scaling into the graph: the model takes uint8 NHWC images as Pillow gives "
                   "them (its 'preprocess' metadata says so).")
@click.option("--json", "as_json", is_flag=True,
              help="Print what was written and measured as one JSON document on stdout; progress goes to stderr.")
@click.option("--quantize", type=click.Choice(["int8"]),
              help="Also write <name>.int8.onnx (static int8), its accuracy and latency measured.")
@click.option("--seed", type=SEED, help="Seed of the final training [default: the run's seed, else 0].")
@click.option("--train-threads", "threads", type=THREADS,
              help=f"{THREADS_HELP}; latency is measured with the run's runtime threads.")
@device_options
@click.option("--from-supernet", "from_supernet", type=click.Path(file_okay=False, path_type=Path),
              help="Start the final training from this supernet's weights for the architecture (same space and "
                   "data set) instead of a fresh initialisation; usually with fewer --epochs.")
@click.option("--runtime", type=click.Choice(_runtime_names()),
              help="Runtime the model ships in: its own files are written beside the ONNX file (openvino: "
                   "<name>.xml + <name>.bin), checked against PyTorch and re-measured in it [default: the run's, "
                   "else onnxruntime].")
@ray_option
@force_option
def export_cmd(run_dir: Path | None, output: Path, epochs: int | None, arch: str | None,
               space_name: str | None, space_option: tuple[str, ...], dataset: str | None,
               dataset_option: tuple[str, ...], input_shape, dynamic_batch: bool, raw_input: bool,
               quantize: str | None, seed: int | None, threads: int | None, train_device: str,
               loader_workers: int | None, as_json: bool, from_supernet: Path | None, runtime: str | None,
               ray_address: str | None, force: bool) -> None:
    """Train the chosen architecture with the final recipe and export it as a checked ONNX model.

    The final recipe is the search's, at full data, for 3x its epochs (--epochs overrides), trained on
    train+validation and tested once on the test split. The file is checked with onnx.checker, compared with
    PyTorch on real test images, run over the test split by onnxruntime, re-measured with the profiler's
    protocol under the run's conditions and runtime (on this machine or the device's Ray node, when it can
    measure there; else the command that measures it on the device is printed) and carries the
    architecture, data set, class names, test accuracy, latency, device and budget in its metadata.

    \b
    hwnas export runs/digits -o model.onnx
    hwnas export -o m.onnx --arch "16:k3e1/24:k3e3/32:k5e3/48:k3e3" --dataset digits
    hwnas export runs/pi4 -o model.onnx --ray HEAD:6379     # re-measured on the pi4 node of the cluster
    hwnas export -o m.onnx --arch "16:k3e1/..." --runtime openvino   # + m.xml/m.bin, measured in OpenVINO
    hwnas export runs/c -o model.onnx --from-supernet supernets/c --epochs 2   # fine-tune shared weights
    """
    import contextlib

    from hwnas.cli.train_cmds import dataset_spec_of
    from hwnas.deploy.pipeline import export_target
    from hwnas.devices import open_device
    from hwnas.deploy.target import resolve_target
    from hwnas.search.rundir import lock_run_folder
    from hwnas.deploy.target import DeployError
    from hwnas.io import check_output_file

    inputs = [dataset] if dataset and Path(dataset).is_file() else []
    output = check_output_file(output, force=force, inputs=inputs, what="model", error=DeployError)  # before work
    if (dataset_option or input_shape) and not dataset:
        raise click.UsageError("-D/--dataset-option and --input-shape go with --dataset")
    from hwnas.training.trainer import training_device

    training_device(train_device)  # usable here, before any work
    data = dataset_spec_of(dataset, dataset_option, input_shape) if dataset else None
    # A run folder being searched is not exported until the search is done with it.
    held = (lock_run_folder(run_dir) if run_dir is not None and run_dir.is_dir() else contextlib.nullcontext())
    with held:
        target = resolve_target(run_dir, arch=arch, space=space_name,
                                space_options=parse_space_options(space_option), dataset=data, epochs=epochs,
                                seed=seed)
        target = target.in_runtime(runtime)
        device = open_device(target.device, profiles_dir=target.profiles_dir, conditions=target.conditions,
                             ray_address=ray_address)
        try:
            summary = export_target(target, output, dynamic_batch=dynamic_batch, quantize=quantize,
                                    raw_input=raw_input, threads=threads,
                                    echo=progress_echo(as_json), device=device,
                                    from_supernet=from_supernet, train_device=train_device,
                                    loader_workers=loader_workers, force=force)
        finally:
            device.close()
    if as_json:
        print_json(_export_document(target, summary, from_supernet))
        return
    model = summary.model
    latency = "not measured" if model.latency_ms is None else format_latency(model.latency_ms)
    budget = "no budget" if target.budget_ms is None else f"budget {format_latency(target.budget_ms)}"
    click.echo(f"wrote {model.path} ({_size(model.size_bytes)}): test accuracy "
               f"{100 * model.test_accuracy:.2f}%, latency {latency} on {target.device} ({budget})")
    click.echo(f"wrote {summary.weights_path} (PyTorch state dict with arch, space and input shape)")
    if model.latency_ms is not None and target.budget_ms is not None and model.latency_ms > target.budget_ms:
        click.echo(f"Warning: the exported model's latency {format_latency(model.latency_ms)} is over the "
                   f"run's budget of {format_latency(target.budget_ms)}", err=True)
    if summary.runtime_file is not None:
        from hwnas.runtimes import get_runtime

        r = summary.runtime_file
        names = " + ".join(r.path.with_suffix(suffix).name for suffix in get_runtime(r.runtime).ship_suffixes)
        click.echo(f"wrote {names} ({_size(r.size_bytes)}) for {r.runtime}: test accuracy "
                   f"{100 * r.test_accuracy:.2f}% in {r.runtime}; the latency above was measured in it")
    if summary.quantized is not None:
        q = summary.quantized
        q_latency = "not measured" if q.latency_ms is None else format_latency(q.latency_ms)
        click.echo(f"wrote {q.path} ({_size(q.size_bytes)}): int8 test accuracy "
                   f"{100 * q.test_accuracy:.2f}%, latency {q_latency}")
    if summary.remote_commands:
        from hwnas.runtimes import get_runtime

        paths = [summary.model.path] + ([summary.model.path.with_suffix(s) for s in
                                         get_runtime(summary.runtime_file.runtime).ship_suffixes]
                                        if summary.runtime_file is not None else [])
        paths += [summary.quantized.path] if summary.quantized is not None else []
        names = ", ".join(p.name for p in paths)
        click.echo(f"to measure the file on {target.device}, copy {names} there (with hwnas installed) "
                   f"and run:")
        for command in summary.remote_commands:
            click.echo(f"  {command}")


def _file_document(exported) -> dict:
    return {"path": str(exported.path), "size_bytes": exported.size_bytes, "test_accuracy": exported.test_accuracy,
            "latency_ms": exported.latency_ms, "latency_source": exported.latency_source}


def _export_document(target, summary, from_supernet: Path | None = None) -> dict:
    """``hwnas export --json``: the files written and what was measured of them (with local paths, unlike the
    files' metadata)."""
    import json

    model = summary.model
    over = (model.latency_ms is not None and target.budget_ms is not None and model.latency_ms > target.budget_ms)
    return {
        "model": _file_document(model), "weights": str(summary.weights_path),
        "quantized": None if summary.quantized is None else {**_file_document(summary.quantized),
                                                             "float_agreement": summary.agreement},
        "arch": target.arch, "space": target.space, "dataset": target.dataset, "device": target.device,
        "latency_budget_ms": target.budget_ms, "over_budget": over,
        "torch_test_accuracy": summary.torch_test_accuracy,
        "parity_max_abs_error": summary.parity_max_abs_error,
        "preprocess": json.loads(model.metadata["preprocess"]),
        "remote_commands": list(summary.remote_commands),
        "runtime": target.conditions.runtime,
        "runtime_file": None if summary.runtime_file is None else {
            **_file_document(summary.runtime_file), "parity_max_abs_error": summary.runtime_parity_max_abs_error},
        "from_supernet": None if from_supernet is None else str(Path(from_supernet).resolve()),
    }


def _recorded_latency(metadata: dict, conditions) -> float | None:
    """The latency recorded in the file at export, when it was measured under ``conditions``."""
    from hwnas.deploy.device import conditions_from_metadata
    from hwnas.errors import HwnasError

    try:
        recorded = float(metadata.get("latency_ms", "none"))
        same = conditions_from_metadata(metadata) == conditions
    except (ValueError, HwnasError):  # none recorded, or unreadable recorded conditions
        return None
    return recorded if same and recorded > 0 else None


@click.command("evaluate")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--dataset", metavar="NAME|FOLDER|FILE.npz",
              help="Data set to run [default: the one in the model's metadata; a model trained on the user's "
                   "folder or file records its name, not its path: give it here].")
@click.option("--split", type=click.Choice(["all", "test"]),
              help="Score the test split, or every example of the data set [default: test on the data set the "
                   "model was trained on (same key as its metadata's), all on other data].")
@click.option("--split-seed", type=SEED,
              help="Seed of the train/validation/test split [default: the model's, as used at export].")
@click.option("--latency", is_flag=True, help="Also measure latency with the profiler's protocol.")
@click.option("--latency-only", is_flag=True, help="Only measure latency (no data set needed).")
@click.option("--provider", type=click.Choice(provider_names()),
              help="Provider of the latency measurement [default: the model's metadata, else cpu].")
@click.option("--measure-threads", "--threads", "threads", type=THREADS,
              help="The runtime's threads in the latency measurement [default: the model's metadata, else 1]; "
                   "--threads is its old name.")
@click.option("--batch-size", type=BATCH_SIZE,
              help="Batch of the latency measurement [default: the model's metadata, else 1].")
@click.option("--runtime", type=click.Choice(_runtime_names()),
              help="Runtime that runs the file [default: the file's: onnxruntime for .onnx, openvino for .xml/.bin, "
                   "litert for .tflite]; openvino also runs an .onnx file.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document on stdout.")
def evaluate_cmd(model: Path, dataset: str | None, split: str | None, split_seed: int | None, latency: bool,
                 latency_only: bool,
                 provider: str | None, threads: int | None, batch_size: int | None, runtime: str | None,
                 as_json: bool) -> None:
    """Run an exported model over a test split in its runtime (and/or measure its latency).

    MODEL is the ONNX file, or a runtime's own file written beside it by 'hwnas export --runtime' (model.xml:
    OpenVINO), whose metadata its ONNX sibling holds. On the data set it was trained on, the test split is the one
    the exporter tested on (same data set and split seed, both in the model's metadata), so the accuracy printed
    is comparable with the stored test accuracy; other data is scored whole (--split all) unless --split test.

    \b
    hwnas evaluate model.onnx --dataset digits
    hwnas evaluate model.onnx --dataset images/      # a model trained on the folder images/: its test split
    hwnas evaluate model.onnx --dataset new_images/ --split all
    hwnas evaluate model.onnx --latency-only --threads 4
    hwnas evaluate model.xml --latency-only          # OpenVINO IR, on the device
    """
    from hwnas.data.preprocess import Preprocess
    from hwnas.deploy.device import budget_verdict, conditions_from_metadata, confirm_latency, windows_note
    from hwnas.deploy.evaluate import evaluate_file, read_shipped
    from hwnas.devices import LocalDevice
    from hwnas.runtimes import get_runtime
    from hwnas.shapes import parse_input_shape

    files, metadata, file_runtime = read_shipped(model)
    if runtime is not None and runtime != file_runtime and file_runtime != "onnxruntime":
        raise click.UsageError(f"{model.name} is a file of runtime {file_runtime}; --runtime {runtime} cannot run it")
    runtime = runtime or file_runtime
    get_runtime(runtime).require(provider or "cpu")
    if latency_only and (dataset or split or split_seed is not None):
        raise click.UsageError("--latency-only measures no accuracy: drop --dataset/--split/--split-seed")
    document: dict = {"model": str(model), "runtime": runtime, "accuracy": None, "latency": None}
    if not latency_only:
        evaluation, info = evaluate_file(files, metadata, dataset=dataset, split_seed=split_seed, split=split,
                                         runtime=runtime)
        stored = metadata.get("test_accuracy")
        comparable = bool(stored and info["same_data"])
        document["accuracy"] = {
            "accuracy": evaluation.accuracy, "split": info["split"], "examples": info["examples"],
            "test_accuracy": evaluation.accuracy if info["split"] == "test" else None,
            "correct": evaluation.correct, "total": evaluation.total,
            "dataset": info["dataset"], "dataset_key": info["dataset_key"], "split_seed": info["split_seed"],
            "stored_test_accuracy": float(stored) if stored else None, "comparable": comparable,
            "reproduced": (round((evaluation.accuracy - float(stored)) * evaluation.total) == 0
                           if comparable else None),
            "preprocess": info["preprocess"]}
    if not latency_only and not as_json:
        if info["split"] == "test":
            click.echo(f"{model.name}: test accuracy {100 * evaluation.accuracy:.2f}% ({evaluation.correct}/"
                       f"{evaluation.total}) on the test split ({evaluation.total} of {info['examples']} examples) "
                       f"of {info['dataset_key']} (split seed {info['split_seed']}), {runtime}")
        else:
            click.echo(f"{model.name}: accuracy {100 * evaluation.accuracy:.2f}% ({evaluation.correct}/"
                       f"{evaluation.total}) on all {evaluation.total} examples of {info['dataset_key']}, "
                       f"{runtime}")
        if info["preprocess"]:
            p = info["preprocess"]
            scaling = "scaling in the graph" if p["scaling"] and p["scaling"]["in_graph"] else (
                p["scaling"]["formula"] if p["scaling"] else "no scaling")
            click.echo(f"inputs as its preprocess metadata says: {p['colour_mode']} "
                       f"{'x'.join(map(str, p['size_hw']))}, {p['dtype']} {p['layout']}, {scaling}")
        stored = metadata.get("test_accuracy")
        if stored and info["same_data"]:
            diff = round((evaluation.accuracy - float(stored)) * evaluation.total)
            verdict = "reproduced" if diff == 0 else f"differs by {diff:+d} image(s)"
            click.echo(f"stored test accuracy {100 * float(stored):.2f}%: {verdict}")
        elif stored and info["split"] == "all":
            click.echo(f"stored test accuracy {100 * float(stored):.2f}% was measured on the test split of "
                       f"{metadata.get('dataset_key')}: not comparable with all examples")
        elif stored:
            click.echo(f"stored test accuracy {100 * float(stored):.2f}% was measured on other data "
                       f"({metadata.get('dataset_key')}, split seed {metadata.get('split_seed')}): not "
                       f"comparable")
    if latency or latency_only:
        if not metadata.get("input_shape"):
            raise click.UsageError(f"{model} has no input_shape in its metadata (not an hwnas export)")
        conditions = conditions_from_metadata(metadata, provider=provider, threads=threads,
                                              batch_size=batch_size, runtime=runtime)
        preprocess = Preprocess.from_metadata(metadata)
        shape = preprocess.input_shape() if preprocess else parse_input_shape(metadata["input_shape"])
        budget = metadata.get("latency_budget_ms", "none")
        budget_ms = None if budget == "none" else float(budget)
        here = LocalDevice(metadata.get("device") or "host")  # evaluate runs on the device itself
        stats, medians = confirm_latency(lambda: here.measure_file(files, shape, conditions),
                                         expected_ms=_recorded_latency(metadata, conditions), budget_ms=budget_ms,
                                         echo=progress_echo(as_json))
        document["latency"] = {
            "median_ms": stats.median_ms, "p10_ms": stats.p10_ms, "p90_ms": stats.p90_ms, "runs": stats.runs,
            "runtime": conditions.runtime, "provider": conditions.provider, "threads": conditions.threads,
            "batch_size": conditions.batch_size,
            "latency_budget_ms": budget_ms, "windows_ms": medians,
            "within_budget": None if budget_ms is None else stats.median_ms <= budget_ms}
        if as_json:
            print_json(document)
            return
        click.echo(f"{model.name}: latency {format_latency(stats.median_ms)} median (p10 "
                   f"{format_latency(stats.p10_ms)}, p90 {format_latency(stats.p90_ms)}, {stats.runs} runs"
                   f"{windows_note(medians)}; {conditions.runtime}, {conditions.provider}, {conditions.threads} "
                   f"thread(s), batch {conditions.batch_size}): "
                   f"{budget_verdict(stats.median_ms, budget_ms)}")
    elif as_json:
        print_json(document)
