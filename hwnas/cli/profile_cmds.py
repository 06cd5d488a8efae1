"""``hwnas profile``: measure latency on this device into a device profile; ``hwnas profile show DEVICE``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from hwnas.cli.common import (BATCH_SIZE, INPUT_SHAPE, NUM_CLASSES, SEED, THREADS, bars_wanted, check_batch_option,
                              json_option, make_space, parse_space_options, print_json, progress_echo, space_options,
                              split_names, warn)
from hwnas.cli.run_options import ray_option, runtime_option, transfer_options
from hwnas.profiling.measure import PRECISIONS
from hwnas.runtimes.onnxruntime import provider_names
from hwnas.profiling.store import DEFAULT_PROFILES_DIR
from hwnas.errors import HwnasError
from hwnas.shapes import format_input_shape

DEFAULT_DATASET = "digits"  # the embedded default task
DEFAULT_CLASSES = 10

# Options of the measuring command that make no sense with a subcommand such as ``show``.
_RUN_OPTIONS = ("device", "space_name", "space_option", "samples", "dataset", "dataset_option", "input_shape",
                "num_classes",
                "threads", "batch_size", "provider", "precision", "seed", "latency_table", "no_progress",
                "ray_address", "runtime", "columns", "device_prefix", "transfer_from", "no_transfer", "as_json")


class _Output:
    """What ``hwnas profile`` reports: lines on stdout, or with ``--json`` the same facts as one JSON document
    (the lines then go to stderr, as progress does)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.document: dict = {}
        self.line = progress_echo(as_json) if as_json else click.echo

    def done(self) -> None:
        if self.as_json:
            print_json(self.document)


def _resolve_input(dataset: str | None, dataset_option: tuple[str, ...], input_shape, num_classes: int | None, *,
                   required: bool):
    """(input shape, number of classes) from ``--dataset`` (a name, an image folder -- converted to
    ``--input-shape`` when given -- or a ``.npz``, with ``-D`` options) or from ``--input-shape``."""
    from hwnas.data import DATASETS
    from hwnas.data.resolve import DatasetSpec

    if dataset_option and not dataset:
        raise click.UsageError("-D/--dataset-option applies to a --dataset")
    image_folder = bool(dataset) and dataset not in DATASETS and Path(dataset).is_dir()
    if dataset and input_shape and not image_folder:
        raise click.UsageError("give either --dataset or --input-shape, not both (both only for an image "
                               "folder, whose images are converted to --input-shape)")
    if not dataset and not input_shape:
        if required:
            raise click.UsageError("a latency table was measured at one input size: say which with --dataset "
                                   "or --input-shape")
        dataset = DEFAULT_DATASET
    if dataset:
        options = parse_space_options(dataset_option) if dataset_option else {}
        ds = DatasetSpec(dataset, options, tuple(input_shape) if input_shape else None).resolve()
        return tuple(ds.input_shape), int(num_classes or ds.num_classes)
    return tuple(input_shape), int(num_classes or DEFAULT_CLASSES)


@click.group("profile", invoke_without_command=True, subcommand_metavar="[show DEVICE]")
@click.option("--device", help="Name of the device profile: the folder <profiles-dir>/<device> "
                                "(<device>.<runtime> with another --runtime than onnxruntime).")
@space_options
@click.option("--samples", type=click.IntRange(min=1),
              help="Architectures the profile should hold for the space at the input shape; a re-run "
                   "measures only the missing ones.")
@click.option("--dataset", metavar="NAME|FOLDER|FILE.npz",
              help=f"Take the input shape and classes from this data set: a registered name, an image folder or "
                   f"a .npz file [default: {DEFAULT_DATASET} unless --input-shape is given].")
@click.option("--dataset-option", "-D", "dataset_option", multiple=True, metavar="KEY=VALUE",
              help="Keyword argument of the data set, e.g. -D canvas=24.")
@click.option("--input-shape", type=INPUT_SHAPE,
              help="Input shape CxHxW (without batch), instead of --dataset; with an image folder, the shape "
                   "its images are converted to.")
@click.option("--num-classes", type=NUM_CLASSES,
              help=f"Output classes [default: the data set's, or {DEFAULT_CLASSES}].")
@click.option("--measure-threads", "--threads", "threads", type=THREADS, default=1, show_default=True,
              help="The runtime's threads, onnxruntime's intra-op threads (1 gives the steadiest numbers; use "
                   "your deployment's); "
                   "--threads is its old name.")
@click.option("--batch-size", type=BATCH_SIZE, default=1, show_default=True,
              help="Inputs per run.")
@runtime_option
@click.option("--provider", type=click.Choice(provider_names()), default="cpu", show_default=True,
              help="onnxruntime execution provider (cuda/tensorrt need the onnxruntime-gpu package; the other "
                   "runtimes run on cpu).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="fp16: half-precision weights and arithmetic (float32 input and output).")
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_PROFILES_DIR, show_default=True, help="Folder holding the device profiles.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the sampler, weights and inputs.")
@click.option("--latency-table", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Build the profile from a CSV of arch,latency_ms rows instead of measuring.")
@click.option("--columns", metavar="all|DEVICE,DEVICE...",
              help="With --latency-table: the table has a column per device (arch,<device>,<device>...); import "
                   "these columns ('all': every one), each into its own profile named after it.")
@click.option("--device-prefix", default="", metavar="TEXT",
              help="With --columns: prefix of the profiles' names (e.g. help- gives help-pixel3).")
@transfer_options
@click.option("--no-progress", is_flag=True,
              help="No progress bar (it is also off when stderr is no terminal).")
@ray_option
@json_option
@click.pass_context
def profile_cmd(ctx: click.Context, device: str | None, space_name: str, space_option: tuple[str, ...],
                samples: int | None, dataset: str | None, dataset_option: tuple[str, ...], input_shape,
                num_classes: int | None, threads: int,
                batch_size: int, runtime: str, provider: str, precision: str, profiles_dir: Path, seed: int,
                latency_table: Path | None, columns: str | None, device_prefix: str,
                transfer_from: tuple[str, ...] | None, no_transfer: bool, no_progress: bool,
                ray_address: str | None, as_json: bool) -> None:
    """Measure latency on this device and store it as a device profile.

    After measuring, it prints the latency predictor's estimated quality (cross-validated on this device's own
    measurements; transferred from the other profiles of the same task unless --no-transfer) and how many more
    measurements would help.

    \b
    hwnas profile --device host --space mobilenet --dataset digits --samples 300
    hwnas profile --device host --runtime openvino --dataset digits --samples 150   # -> profiles/host.openvino
    hwnas profile --device pixel7 --space nb201 --input-shape 3x32x32 --latency-table pixel7.csv
    hwnas profile --space nb201 --input-shape 3x32x32 --latency-table latency.csv --columns all --device-prefix help-
    hwnas profile --device pi4 --ray HEAD:6379 --space mobilenet --dataset digits --samples 300
    hwnas profile show host
    """
    if ctx.invoked_subcommand is not None:
        given = [name for name in _RUN_OPTIONS
                 if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)]
        if given:
            flag = "json" if given[0] == "as_json" else given[0].replace("_name", "").replace("_", "-")
            raise click.UsageError(f"--{flag} does not apply to 'profile {ctx.invoked_subcommand}'"
                                   + (" (give it after the subcommand)" if flag == "json" else ""))
        ctx.obj = {"profiles_dir": profiles_dir}
        return
    if no_transfer and transfer_from:
        raise click.UsageError("--transfer-from and --no-transfer contradict each other; give one")
    if columns is not None:
        if latency_table is None:
            raise click.UsageError("--columns applies to a --latency-table with a column per device")
        if device:
            raise click.UsageError("--device does not apply to --columns: each column is imported into the "
                                   "profile named after it (with --device-prefix in front)")
        if samples is not None:
            raise click.UsageError("--samples does not apply to --latency-table (the table's rows are imported)")
        named = ctx.get_parameter_source("runtime") not in (None, click.core.ParameterSource.DEFAULT)
        out = _Output(as_json)
        _import_device_table(space_name, space_option, latency_table, columns, device_prefix,
                             (dataset, dataset_option), input_shape, num_classes, profiles_dir,
                             runtime if named else None, out)
        out.done()
        return
    if device_prefix:
        raise click.UsageError("--device-prefix applies to --columns")
    if not device:
        raise click.UsageError("Missing option '--device' (the name of the device profile)")
    if latency_table is not None:
        if samples is not None:
            raise click.UsageError("--samples does not apply to --latency-table (the table's rows are "
                                   "imported)")
        named = ctx.get_parameter_source("runtime") not in (None, click.core.ParameterSource.DEFAULT)
        out = _Output(as_json)
        _import_table(device, space_name, space_option, latency_table, (dataset, dataset_option), input_shape,
                      num_classes, profiles_dir, runtime if named else None, out)
        out.done()
        return
    if samples is None:
        raise click.UsageError("Missing option '--samples' (how many architectures to profile)")
    out = _Output(as_json)
    _measure(device=device, space_name=space_name, space_option=space_option, samples=samples,
             dataset=(dataset, dataset_option), input_shape=input_shape, num_classes=num_classes, threads=threads,
             batch_size=batch_size, runtime=runtime, provider=provider, precision=precision,
             profiles_dir=profiles_dir, seed=seed, no_progress=no_progress, ray_address=ray_address,
             transfer=None if no_transfer else transfer_from or (), out=out)
    out.done()


def _measure(*, device, space_name, space_option, samples, dataset, input_shape, num_classes, threads,
             batch_size, runtime, provider, precision, profiles_dir, seed, no_progress, ray_address=None,
             transfer: tuple[str, ...] | None = (), out: _Output | None = None) -> None:
    out = out or _Output(False)
    from hwnas.devices import LocalDevice, open_device, profile_name
    from hwnas.profiling.measure import Conditions
    from hwnas.runtimes import DEFAULT_RUNTIME
    from hwnas.profiling.progress import make_progress
    from hwnas.profiling.runner import RunSummary, profile_space
    from hwnas.profiling.store import ProfileStore

    shape, classes = _resolve_input(*dataset, input_shape, num_classes, required=False)
    check_batch_option(batch_size, shape)
    space = make_space(space_name, space_option)
    store = ProfileStore(profiles_dir, profile_name(device, runtime or DEFAULT_RUNTIME))
    conditions = Conditions(provider=provider, threads=threads, batch_size=batch_size, precision=precision,
                            runtime=runtime)
    # ``hwnas profile`` runs on the device itself (or reaches it on Ray): this machine is the device
    measuring = (open_device(device, profiles_dir=str(profiles_dir), conditions=conditions, ray_address=ray_address)
                 if ray_address else LocalDevice(device))
    try:
        fingerprint = measuring.fingerprint(conditions)  # before anything is created: a clear line
        if transfer:  # sources named by --transfer-from exist: checked before minutes of measuring
            from hwnas.profiling.store import list_devices

            missing = [n for n in transfer if n not in list_devices(profiles_dir)]
            if missing:
                raise click.UsageError(f"--transfer-from: no profile {missing[0]!r} under {profiles_dir}")
    except BaseException:
        measuring.close()
        raise
    summary = RunSummary()
    progress = make_progress(bars_wanted(no_progress))
    where = f"{space.name} architectures at {format_input_shape(shape)}"
    try:
        profile_space(store, space, samples=samples, input_shape=shape, num_classes=classes,
                      conditions=conditions, space_options=parse_space_options(space_option), seed=seed,
                      progress=progress, summary=summary, measure_fn=measuring.measure_arch, fingerprint=fingerprint)
    except KeyboardInterrupt:
        progress.close()
        out.line(f"profile {store.device!r} ({store.path}): {summary.measured} {where} measured before the "
                   f"interruption are kept; it holds {summary.held_after}; run the same command to resume")
        raise
    finally:
        progress.close()
        measuring.close()
    out.document.update(profile=store.device, path=str(store.path), space=space.name, input_shape=list(shape),
                        runtime=runtime or DEFAULT_RUNTIME, measured=summary.measured,
                        held_before=summary.held_before, held_after=summary.held_after,
                        not_converged=summary.not_converged, seconds=round(summary.seconds, 2))
    if summary.measured == 0:
        out.line(f"profile {store.device!r} ({store.path}) already holds {summary.held_after} {where} "
                   f"(--samples {samples}); nothing to measure")
    else:
        capped = (f"; {summary.not_converged} hit a cap before their median was stable"
                  if summary.not_converged else "")
        out.line(f"profile {store.device!r} ({store.path}): measured {summary.measured} {where} in "
                   f"{summary.seconds:.1f} s{capped}; it now holds {summary.held_after}")
    _print_quality(store, space, shape=shape, classes=classes, options=parse_space_options(space_option),
                   conditions=conditions, transfer=transfer, seed=seed, out=out)


def _print_quality(store, space, *, shape, classes, options, conditions, transfer, seed, out: _Output) -> None:
    """The latency predictor's cross-validated quality on the profile's own records, and what more would do."""
    from hwnas.profiling.transfer import SourceTask, estimate_quality, find_sources

    records = store.records(space.name, shape, options)
    sources = []
    if transfer is not None:
        task = SourceTask(space.name, tuple(shape), options, conditions.batch_size, conditions.precision)
        sources = find_sources(store.root, task, target=store.device, names=list(transfer) or None,
                               space_size=space.size(), report=warn)
    try:
        quality = estimate_quality(records, sources, space=space.name, space_options=options, input_shape=shape,
                                   num_classes=classes, seed=seed, transfer=transfer is not None)
    except HwnasError as exc:  # the measurements are stored; only the estimate failed
        warn(f"the latency predictor's quality could not be estimated: {exc}; the measurements are stored, "
             f"and 'hwnas predictors fit latency' reports the same error with its cause")
        return
    if quality is not None:
        out.line(quality.summary())
        out.document["quality"] = {**dataclasses.asdict(quality), "suggestion": quality.suggestion()}


def _import_table(device, space_name, space_option, latency_table, dataset, input_shape, num_classes,
                  profiles_dir, runtime, out: _Output) -> None:
    """A published table into the profile of ``device`` in ``runtime`` (the runtime the table was measured in,
    when the user says so, None otherwise: the profile is then ``<device>.<runtime>``, where a search in that
    runtime looks)."""
    from hwnas.devices import profile_name
    from hwnas.profiling.runner import import_table
    from hwnas.runtimes import DEFAULT_RUNTIME
    from hwnas.profiling.store import ProfileStore

    shape, classes = _resolve_input(*dataset, input_shape, num_classes, required=True)
    space = make_space(space_name, space_option)
    store = ProfileStore(profiles_dir, profile_name(device, runtime or DEFAULT_RUNTIME))
    summary = import_table(store, space, str(latency_table), input_shape=shape, num_classes=classes,
                           runtime=runtime,
                           space_options=parse_space_options(space_option),
                           report=lambda problem: warn(f"{latency_table}: {problem}; skipped (fix the row and run "
                                                      f"the import again to add it)"))
    skipped = (f"{len(summary.problems)} row(s) skipped (listed above)" if summary.problems
               else "no row skipped")
    already = f", {summary.already} already in the profile" if summary.already else ""
    out.document.update(profile=store.device, path=str(store.path), space=space.name, input_shape=list(shape),
                        table=latency_table.name, imported=summary.measured, skipped=len(summary.problems),
                        already=summary.already, held_after=summary.held_after)
    out.line(f"profile {store.device!r} ({store.path}): imported {summary.measured} {space.name} latencies at "
               f"{format_input_shape(shape)} from {latency_table.name} ({skipped}{already}); it now holds "
               f"{summary.held_after}")


def _import_device_table(space_name, space_option, latency_table, columns, prefix, dataset, input_shape,
                         num_classes, profiles_dir, runtime, out: _Output) -> None:
    """Each column of a table of several devices into its own table-sourced profile."""
    from hwnas.profiling.runner import import_device_table

    wanted = None if columns.strip().lower() == "all" else split_names(columns, "--columns")
    shape, classes = _resolve_input(*dataset, input_shape, num_classes, required=True)
    space = make_space(space_name, space_option)
    summaries = import_device_table(
        profiles_dir, space, str(latency_table), input_shape=shape, num_classes=classes, columns=wanted,
        prefix=prefix, space_options=parse_space_options(space_option), runtime=runtime,
        report=lambda problem: warn(f"{latency_table}: {problem}; skipped (fix the row and run the import again to "
                                    f"add it)"))
    out.document.update(table=latency_table.name, space=space.name, input_shape=list(shape), profiles=[
        {"profile": name, "path": str(Path(profiles_dir) / name), "imported": summary.measured,
         "already": summary.already, "held_after": summary.held_after} for name, summary in summaries.items()])
    for name, summary in summaries.items():
        already = f", {summary.already} already in it" if summary.already else ""
        out.line(f"profile {name!r} ({Path(profiles_dir) / name}): imported {summary.measured} {space.name} "
                   f"latencies at {format_input_shape(shape)}{already}; it now holds {summary.held_after}")
    out.line(f"{len(summaries)} profile(s) from {latency_table.name}: they serve as transfer sources for any "
               f"device profiled for {space.name} at {format_input_shape(shape)}")


def _fmt_ms(value) -> str:
    return "-" if value is None else f"{value:.3f} ms"


@profile_cmd.command("show")
@click.argument("device")
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Folder holding the device profiles [default: {DEFAULT_PROFILES_DIR}].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def show_cmd(ctx: click.Context, device: str, profiles_dir: Path | None, as_json: bool) -> None:
    """Show a device profile: fingerprint, record counts, latency range and noise figures."""
    from hwnas.profiling.fingerprint import runtime_of
    from hwnas.profiling.report import summarize_profile
    from hwnas.profiling.store import ProfileStore

    root = profiles_dir or (ctx.obj or {}).get("profiles_dir") or Path(DEFAULT_PROFILES_DIR)
    info = summarize_profile(ProfileStore.open(root, device))
    if as_json:
        print_json(info)
        return
    fp = info["fingerprint"]
    click.echo(f"profile      {info['device']}  ({info['path']})")
    if fp.get("source") == "table":
        click.echo(f"source       published table(s): {', '.join(fp.get('tables') or [])}")
    else:
        click.echo(f"cpu          {fp.get('cpu_model')} ({fp.get('cpu_cores')} cores, {fp.get('machine')})")
        click.echo(f"gpu          {fp.get('gpu_name') or 'none'}")
        click.echo(f"os           {fp.get('os')}, Python {fp.get('python_version')}")
        runtime, version = runtime_of(fp)
        click.echo(f"conditions   {runtime} {version}, "
                   f"provider {fp.get('provider')}, {fp.get('threads')} thread(s), "
                   f"batch {fp.get('batch_size')}, {fp.get('precision')}")
    click.echo(f"created      {fp.get('created')} (hwnas {fp.get('hwnas_version')}, schema "
               f"{fp.get('schema_version')})")
    click.echo(f"records      {info['records']}")
    for group in info["groups"]:
        options = "".join(f" -O {k}={v}" for k, v in group["space_options"].items())
        click.echo(f"  {group['space']}{options} at {format_input_shape(group['input_shape'])}: "
                   f"{group['count']} architectures, latency {_fmt_ms(group['min_ms'])} .. "
                   f"{_fmt_ms(group['max_ms'])} (median {_fmt_ms(group['median_ms'])})")
        if group["measured"]:
            click.echo(f"    noise: median 95% CI of the median +-{100 * group['median_rel_ci']:.2f}%, "
                       f"median p10-p90 spread {100 * group['median_spread']:.1f}%, "
                       f"{group['converged']}/{group['measured']} converged, "
                       f"median {group['median_runs']:.0f} timed runs")
