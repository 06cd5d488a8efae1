"""``hwnas predictors fit latency|accuracy``, ``hwnas predictors show NAME`` and ``hwnas predict ARCH...``."""

from __future__ import annotations

import math
from pathlib import Path

import click

from hwnas.cli.common import EPOCHS, INPUT_SHAPE, SEED, json_option, make_space, print_json, space_options, warn
from hwnas.cli.run_options import transfer_options
from hwnas.errors import HwnasError
from hwnas.profiling.store import DEFAULT_PROFILES_DIR

DEFAULT_PREDICTORS_DIR = "predictors"
MIN_RECORDS = 10

predictors_dir_option = click.option(
    "--predictors-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_PREDICTORS_DIR,
    show_default=True, help="Folder holding the fitted predictors.")


def predictor_dir(predictors_dir: Path, name: str) -> Path:
    """``predictors_dir / name`` for a name that is one folder name (never ``..``, a path or absolute)."""
    from hwnas.io import check_name
    from hwnas.predictors.model import PredictorError

    return Path(predictors_dir) / check_name(name, what="predictor name", error=PredictorError)


def default_name(text: str) -> str:
    """A default predictor name made safe (a data-set key such as ``folder:pets@1a2b`` holds ``:`` and ``@``)."""
    from hwnas.data.resolve import safe_name

    return safe_name(text, limit=64)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _print_scores(scores: dict) -> None:
    """The held-out and cross-validated scores."""
    for split in ("holdout", "cv"):
        if split in scores:
            line = "  ".join(f"{k}={_fmt(v)}" for k, v in scores[split].items())
            click.echo(f"  {split:8s} {line}")


def fit_and_save(kind: str, archs: list[str], y, *, space, space_options: dict, input_shape, num_classes: int,
                 directory: Path, source: dict, seed: int, sources: list | None = None) -> dict:
    """Assesses (held-out split + 5-fold CV), fits on everything, saves; returns the scores. With ``sources`` (a
    list, perhaps empty) a latency predictor is the best of transfer from them, the additive model and XGBoost
    (:mod:`hwnas.predictors.select`); with None it is the registered one (XGBoost)."""
    from hwnas.predictors import PREDICTORS, assess
    from hwnas.predictors.select import SelectedLatencyPredictor

    if len(archs) < MIN_RECORDS:
        raise HwnasError(f"only {len(archs)} records to fit a {kind} predictor; at least {MIN_RECORDS} are needed")

    def make():
        common = dict(space=space.name, space_options=space_options, input_shape=input_shape,
                      num_classes=num_classes, random_state=seed)
        if sources is not None:
            return SelectedLatencyPredictor(sources, **common)
        return PREDICTORS.create(kind, **common)

    model = make().fit(archs, y)
    if sources is not None and kind == "latency":  # assess the chosen candidate (not a selection nested in each fold)
        scores = assess(lambda: model.factories()[model.chosen_](), archs, y, seed=seed)
    else:
        scores = assess(make, archs, y, seed=seed)
    model.save(directory, scores=scores, source=source)
    return scores


@click.group("predictors")
def predictors_cmd() -> None:
    """Fit, inspect and list the latency and accuracy predictors."""


@predictors_cmd.group("fit")
def fit_cmd() -> None:
    """Fit a predictor and store it (with its held-out scores) under --predictors-dir."""


@fit_cmd.command("latency")
@click.option("--device", required=True, help="Device profile to learn from (<profiles-dir>/<device>).")
@space_options
@click.option("--dataset", default=None, help="Input shape from this data set [default: digits].")
@click.option("--input-shape", type=INPUT_SHAPE, help="Input shape CxHxW instead of --dataset.")
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_PROFILES_DIR,
              show_default=True)
@predictors_dir_option
@click.option("--name", help="Folder name under --predictors-dir [default: latency-<device>-<space>-<shape>].")
@click.option("--seed", type=SEED, default=0, show_default=True)
@transfer_options
@json_option
def fit_latency_cmd(device: str, space_name: str, space_option, dataset, input_shape, profiles_dir: Path,
                    predictors_dir: Path, name: str | None, seed: int, transfer_from: tuple[str, ...] | None,
                    no_transfer: bool, as_json: bool) -> None:
    """Fit the latency predictor of DEVICE from its profile, transferring from the other profiles of the same
    task (space, input shape, batch size, precision) unless --no-transfer."""
    if no_transfer and transfer_from:
        raise click.UsageError("--transfer-from and --no-transfer contradict each other; give one")
    if name is not None:
        predictor_dir(predictors_dir, name)  # a bad name is refused before any work
    from hwnas.cli.common import parse_space_options
    from hwnas.predictors import read_meta
    from hwnas.profiling import ProfileStore
    from hwnas.shapes import format_input_shape

    space = make_space(space_name, space_option)
    options = parse_space_options(space_option)
    shape, classes = _task_shape(dataset, input_shape)
    store = ProfileStore.open(profiles_dir, device)
    records = store.records(space.name, shape, options)
    if not records:
        raise HwnasError(f"profile {device!r} holds no {space.name} measurements at input "
                         f"{format_input_shape(shape)}; run 'hwnas profile --device {device} --space {space.name}'")
    classes = int(records[0].get("num_classes", classes))
    name = name or default_name(f"latency-{device}-{space.name}-{format_input_shape(shape)}")
    sources = None
    if not no_transfer:
        from hwnas.profiling.transfer import SourceTask, find_sources

        fingerprint = store.fingerprint or {}
        task = SourceTask(space.name, tuple(shape), options, fingerprint.get("batch_size"),
                          fingerprint.get("precision"))
        sources = find_sources(profiles_dir, task, target=device, names=transfer_from, space_size=space.size(),
                               report=warn)
    scores = fit_and_save("latency", [r["arch"] for r in records], [r["median_ms"] for r in records],
                          space=space, space_options=options, input_shape=shape, num_classes=classes,
                          directory=predictor_dir(predictors_dir, name), seed=seed, sources=sources,
                          source={"device": device, "fingerprint": store.fingerprint, "records": len(records)})
    meta = read_meta(predictor_dir(predictors_dir, name))
    if as_json:
        print_json({"name": name, "path": str(predictor_dir(predictors_dir, name)), "kind": "latency",
                    "algorithm": meta.get("algorithm"), "device": device, "records": len(records),
                    "selection": (meta.get("scores") or {}).get("selection"), "sources": meta.get("sources") or [],
                    "scores": scores})
        return
    how = f", transferred from {len(meta['sources'])} other profile(s)" if meta.get("sources") else ""
    click.echo(f"fitted latency predictor {name} ({_algorithm(meta)}) on {len(records)} measurements of "
               f"{device!r}{how}")
    _print_selection(meta)
    _print_sources(meta.get("sources") or [])
    _print_scores(scores)


@fit_cmd.command("accuracy")
@space_options
@click.option("--dataset", "dataset_spec", default="digits", show_default=True,
              help="Data set whose stored training records to learn from (see 'hwnas datasets').")
@click.option("--accuracy-table", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Learn from a CSV of arch,accuracy rows instead of stored trainings.")
@click.option("--epochs", type=EPOCHS,
              help="Use records of this fidelity [default: the fidelity with the most records].")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Evaluation store (SQLite) [default: $HWNAS_STORE or ./evals.sqlite].")
@predictors_dir_option
@click.option("--name", help="Folder name under --predictors-dir [default: accuracy-<space>-<dataset>].")
@click.option("--seed", type=SEED, default=0, show_default=True)
@json_option
def fit_accuracy_cmd(space_name: str, space_option, dataset_spec: str, accuracy_table: Path | None,
                     epochs: int | None, store_path: Path | None, predictors_dir: Path, name: str | None,
                     seed: int, as_json: bool) -> None:
    """Fit the accuracy predictor from stored trainings (or a table)."""
    if name is not None:
        predictor_dir(predictors_dir, name)  # a bad name is refused before any work
    from hwnas.cli.common import parse_space_options
    from hwnas.data import resolve_dataset

    space = make_space(space_name, space_option)
    options = parse_space_options(space_option)
    dataset = resolve_dataset(dataset_spec)
    if accuracy_table is not None:
        from hwnas.training import AccuracyTable

        table = AccuracyTable(accuracy_table, space)
        archs = table.architectures()
        values = [table.lookup(a) for a in archs]
        source = {"dataset": dataset.key, "table": str(accuracy_table), "table_sha1": table.digest}
        label = Path(accuracy_table).stem
    else:
        archs, values, source = _stored_accuracies(space, dataset, epochs, store_path)
        label = dataset.key
    name = name or default_name(f"accuracy-{space.name}-{label}")
    scores = fit_and_save("accuracy", archs, values, space=space, space_options=options,
                          input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                          directory=predictor_dir(predictors_dir, name), seed=seed,
                          source={**source, "records": len(archs)})
    if as_json:
        print_json({"name": name, "path": str(predictor_dir(predictors_dir, name)), "kind": "accuracy",
                    "records": len(archs), "source": source, "scores": scores})
        return
    click.echo(f"fitted accuracy predictor {name} on {len(archs)} architectures")
    _print_scores(scores)


def _stored_accuracies(space, dataset, epochs: int | None, store_path: Path | None):
    """Mean validation accuracy per architecture over seeds, for the fidelity with most records."""
    import collections

    from hwnas.cli.train_cmds import open_store
    from hwnas.training.store import space_key

    store = open_store(store_path, must_exist=True)
    key = space_key(space)
    records = [r for r in store.query(space=space.name, dataset=dataset.key, source="train", epochs=epochs)
               if r.space == key]
    if not records:
        raise HwnasError(f"no stored trainings of {key} on {dataset.key} in {store.path}"
                         + (f" at {epochs} epochs" if epochs else "") + "; train some with 'hwnas train' or "
                         "'hwnas search'")
    groups = collections.Counter((r.recipe_hash, r.epochs, r.data_fraction) for r in records)
    chosen = groups.most_common(1)[0][0]
    per_arch: dict[str, list[float]] = collections.defaultdict(list)
    for r in records:
        if (r.recipe_hash, r.epochs, r.data_fraction) == chosen:
            per_arch[r.arch].append(r.val_accuracy)
    archs = sorted(per_arch)
    source = {"dataset": dataset.key, "store": str(store.path), "recipe_hash": chosen[0], "epochs": chosen[1],
              "data_fraction": chosen[2]}
    return archs, [sum(per_arch[a]) / len(per_arch[a]) for a in archs], source


def _task_shape(dataset: str | None, input_shape) -> tuple[tuple[int, int, int], int]:
    from hwnas.data import create_dataset

    if dataset and input_shape:
        raise click.UsageError("give either --dataset or --input-shape, not both")
    if input_shape:
        return tuple(input_shape), 10
    ds = create_dataset(dataset or "digits")
    return tuple(ds.input_shape), ds.num_classes


def _algorithm(meta: dict) -> str:
    return {"transfer": "transfer", "additive": "additive per-operator model"}.get(meta.get("algorithm"),
                                                                                   "XGBoost ensemble")


def _print_selection(meta: dict) -> None:
    """Which candidate latency models were cross-validated, and how each did."""
    selection = (meta.get("scores") or {}).get("selection") or {}
    if selection.get("candidates"):
        click.echo("  chosen by 5-fold CV on the device's own measurements (within +-10%): " + ", ".join(
            f"{name} {100 * score['within_10pct']:.0f}%" for name, score in selection["candidates"].items()))


def _print_sources(sources: list[dict], *, own: int | None = None) -> None:
    """A transfer predictor's sources, with their weights (nothing for a predictor without transfer)."""
    if not sources:
        return
    mine = f" on {own} own measurements" if own is not None else ""
    click.echo(f"  transfer from {len(sources)} profile(s){mine} (ridge on their log-latencies; weight, records):")
    for entry in sorted(sources, key=lambda e: -abs(float(e.get("weight", 0.0)))):
        info = entry.get("info") or {}
        where = info.get("runtime") or ("table" if info.get("source") == "table" else "")
        click.echo(f"    {entry['name']:24s} {float(entry.get('weight', 0.0)):+.3f}  {entry.get('records')}"
                   f"{'  ' + where if where else ''}")


@predictors_cmd.command("show")
@click.argument("name")
@predictors_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print meta.json as it is.")
def show_cmd(name: str, predictors_dir: Path, as_json: bool) -> None:
    """Show a predictor's metadata and validation scores."""
    from hwnas.predictors import read_meta

    meta = read_meta(predictor_dir(predictors_dir, name))
    if as_json:
        print_json(meta)
        return
    algorithm = f" ({_algorithm(meta)})" if meta["kind"] == "latency" else ""
    click.echo(f"{name}: {meta['kind']} predictor{algorithm}, space {meta['space']}, input "
               f"{'x'.join(map(str, meta['input_shape']))}, {meta['n_train']} training records, "
               f"{len(meta['features'])} features (schema {meta.get('feature_schema')}), "
               f"hwnas {meta.get('hwnas_version')}")
    source = meta.get("source", {})
    if "device" in source:
        click.echo(f"  device   {source['device']}")
    if "dataset" in source:
        click.echo(f"  dataset  {source['dataset']}")
    _print_selection(meta)
    _print_sources(meta.get("sources") or [], own=meta["n_train"])
    _print_scores(meta.get("scores", {}))


@predictors_cmd.command("list")
@predictors_dir_option
@json_option
def list_cmd(predictors_dir: Path, as_json: bool) -> None:
    """List the fitted predictors."""
    from hwnas.predictors import read_meta

    if not predictors_dir.is_dir():
        raise HwnasError(f"no predictors folder at {predictors_dir} (fit one with 'hwnas predictors fit ...', or "
                         f"give --predictors-dir)")
    rows = []
    for folder in sorted(p for p in predictors_dir.glob("*") if (p / "meta.json").is_file()):
        try:
            meta = read_meta(folder)
        except HwnasError as exc:
            rows.append({"name": folder.name, "unreadable": str(exc)})
            continue
        rows.append({"name": folder.name, "kind": meta["kind"], "space": meta["space"], "n_train": meta["n_train"],
                     "algorithm": meta.get("algorithm"), "transfer_sources": len(meta.get("sources") or [])})
    if as_json:
        print_json({"predictors_dir": str(predictors_dir), "predictors": rows})
        return
    for row in rows:
        if "unreadable" in row:
            click.echo(f"{row['name']}  (unreadable: {row['unreadable']})")
            continue
        transfer = f"  transfer from {row['transfer_sources']}" if row["transfer_sources"] else ""
        click.echo(f"{row['name']}  {row['kind']}  {row['space']}  n={row['n_train']}{transfer}")


@click.command("predict")
@click.argument("archs", nargs=-1, required=True)
@click.option("--predictor", "name", required=True, help="Name of a fitted predictor (see 'hwnas predictors list').")
@predictors_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def predict_cmd(archs: tuple[str, ...], name: str, predictors_dir: Path, as_json: bool) -> None:
    """Predict latency (ms) or accuracy (± std) of architectures, one line each, in the order given."""
    from hwnas.predictors import XGBPredictor

    predictor = XGBPredictor.load(predictor_dir(predictors_dir, name))
    parsed = [predictor.featurizer_.parse(a) for a in archs]  # a bad string fails before any output
    mean, std = predictor.predict_dist(parsed)
    rows = [{"arch": a.string, "prediction": float(m), "std": float(s)} for a, m, s in zip(parsed, mean, std)]
    if as_json:
        print_json({"predictor": name, "kind": predictor.kind, "unit": "ms" if predictor.kind == "latency"
                    else "accuracy", "predictions": rows})
        return
    for row in rows:
        if predictor.kind == "latency":
            click.echo(f"{row['arch']}\t{row['prediction']:.4f} ms")
        else:
            click.echo(f"{row['arch']}\t{row['prediction']:.4f} ± {row['std']:.4f}")
