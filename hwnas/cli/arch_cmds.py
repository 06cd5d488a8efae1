"""Commands on search spaces and single architectures: spaces, sample, inspect, onnx."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from hwnas.cli.common import (BATCH_SIZE, INPUT_SHAPE, NUM_CLASSES, SEED, check_batch_option, force_option,
                              json_option, make_space, print_json, space_options)
from hwnas.errors import HwnasError

DEFAULT_SHAPE = "1x8x8"  # the embedded default task: scikit-learn's 8x8 digits, 10 classes
DEFAULT_CLASSES = 10


@click.command("spaces")
@json_option
def spaces_cmd(as_json: bool) -> None:
    """List the registered search spaces with their sizes."""
    from hwnas.spaces import SPACES, create_space

    rows, documents = [], []
    for name in SPACES.names():
        space = create_space(name)
        documents.append({"space": name, "architectures": int(space.size()), "decisions": len(space.decisions),
                          "description": space.describe()})
        rows.append((name, f"{space.size():.4g}" if space.size() > 10**6 else str(space.size()),
                     str(len(space.decisions)), space.describe()))
    if as_json:
        print_json({"spaces": documents})
        return
    header = ("space", "architectures", "decisions", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])


@click.command("sample")
@space_options
@click.option("-n", "count", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of architectures.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the sampler.")
@click.option("--unique/--allow-repeats", default=True, show_default=True,
              help="Print distinct architectures only.")
@json_option
def sample_cmd(space_name: str, space_option: tuple[str, ...], count: int, seed: int, unique: bool,
               as_json: bool) -> None:
    """Print N architectures sampled uniformly per decision, one canonical string a line."""
    space = make_space(space_name, space_option)
    if unique and count > space.size():
        raise click.BadParameter(f"the {space.name} space holds only {space.size()} architectures",
                                 param_hint="-n")
    rng = np.random.default_rng(seed)
    archs = space.sample_distinct(count, rng) if unique else [space.sample(rng) for _ in range(count)]
    if len(archs) < count and as_json:  # no partial document: the error alone
        raise HwnasError(f"could not draw {count} distinct architectures in {100 * count + 1000} samples")
    if as_json:
        print_json({"space": space.name, "seed": seed, "unique": unique,
                    "archs": [{"arch": arch.string, "id": arch.id} for arch in archs]})
        return
    for arch in archs:
        click.echo(arch.string)
    if len(archs) < count:
        raise HwnasError(f"could not draw {count} distinct architectures in {100 * count + 1000} samples")


@click.command("inspect")
@click.argument("arch")
@space_options
@click.option("--input-shape", type=INPUT_SHAPE, default=DEFAULT_SHAPE, show_default=True,
              help="Input shape CxHxW (without batch).")
@click.option("--num-classes", type=NUM_CLASSES, default=DEFAULT_CLASSES, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect_cmd(arch: str, space_name: str, space_option: tuple[str, ...], input_shape, num_classes: int,
                as_json: bool) -> None:
    """Show an architecture's decisions, parameters, MACs and layers."""
    space = make_space(space_name, space_option)
    parsed = space.parse(arch)
    stats = space.features(parsed, input_shape, num_classes)
    info = {"space": space.name, "arch": parsed.string, "id": parsed.id, "input_shape": list(input_shape),
            "num_classes": num_classes, "decisions": parsed.to_dict(), **stats}
    if as_json:
        print_json(info)
        return
    click.echo(f"arch        {parsed.string}")
    click.echo(f"id          {parsed.id}")
    click.echo(f"space       {space.name}  (input {'x'.join(map(str, input_shape))}, {num_classes} classes)")
    click.echo(f"params      {int(stats['params']):,}")
    click.echo(f"MACs        {int(stats['macs']):,}")
    click.echo(f"activations {int(stats['activation_elems']):,} elements "
               f"(largest tensor {int(stats['peak_activation_elems']):,})")
    click.echo(f"layers      {int(stats['conv_layers'])} conv, {int(stats['linear_layers'])} linear")


@click.command("onnx")
@click.argument("arch")
@space_options
@click.option("--input-shape", type=INPUT_SHAPE, default=DEFAULT_SHAPE, show_default=True,
              help="Input shape CxHxW (without batch).")
@click.option("--num-classes", type=NUM_CLASSES, default=DEFAULT_CLASSES, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Destination .onnx file (written atomically).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the weight initialisation.")
@click.option("--batch-size", type=BATCH_SIZE, default=1, show_default=True)
@click.option("--dynamic-batch", is_flag=True, help="Export with a symbolic batch dimension.")
@force_option
@json_option
def onnx_cmd(arch: str, space_name: str, space_option: tuple[str, ...], input_shape, num_classes: int,
             output: Path, seed: int, batch_size: int, dynamic_batch: bool, force: bool, as_json: bool) -> None:
    """Export an (untrained) architecture to a checked ONNX file."""
    from hwnas.errors import ExportError
    from hwnas.io import check_output_file
    from hwnas.onnx_export import export_arch

    check_batch_option(batch_size, input_shape)
    output = check_output_file(output, force=force, what="ONNX file", error=ExportError, new_folder=False)

    space = make_space(space_name, space_option)
    parsed = space.parse(arch)
    _, report = export_arch(space, parsed, input_shape, num_classes, output, seed=seed,
                            batch_size=batch_size, dynamic_batch=dynamic_batch)
    if as_json:
        print_json({"path": str(output), "arch": parsed.string, "space": space.name, "size_bytes": report.size_bytes,
                    "opset": report.opset, "checker_passed": True,
                    "parity": None if report.parity is None else {
                        "max_abs_error": report.parity.max_abs_error, "tolerance": report.parity.tolerance,
                        "num_inputs": report.parity.num_inputs}})
        return
    click.echo(f"wrote {output} ({report.size_bytes / 1024:.1f} KiB, opset {report.opset}); "
               f"onnx.checker passed; onnxruntime vs PyTorch max abs error "
               f"{report.parity.max_abs_error:.2e} over {report.parity.num_inputs} inputs")
