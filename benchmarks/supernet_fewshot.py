"""Few-shot supernets (Zhao et al., ICML 2021): does splitting a trained supernet on one decision rank better?

A trained supernet (``--parent``) is copied into one child per value of ``--split`` (e.g. ``s3.depth``); each
child goes on training for ``--epochs`` with its sub-networks restricted to its value (uniform sampling by
rejection), so that weights shared by incompatible sub-networks are no longer shared. An architecture is then
estimated by the child of its value. A control child goes on training the same epochs unrestricted, to tell
the split from the extra training. Every child trains in its own process (``--workers`` at a time, one thread
each) through ``hwnas.supernet.training.train_supernet`` (resumable).

Reported per reference (``--reference``, discrimination results with two seeds per architecture): Kendall tau
of the parent, the control and the few-shot estimates against the mean of the two seeds, beside seed vs seed
and the split decision's value alone taken as a ranking.

    python benchmarks/supernet_fewshot.py --parent SN_UNIFORM --split s3.depth --epochs 20 --lr 0.005 \\
        --reference benchmarks/results/discrimination-ep10-30.json \\
        --reference benchmarks/results/discrimination-cluttered.json --work /tmp/fewshot

Prints a table and writes ``benchmarks/results/supernet_fewshot[-<tag>].json``. Measured, not built into hwnas:
it did not rank better on cluttered-digits (README, "Weight sharing").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import map_jobs, print_table, write_result  # noqa: E402
from supernet import reference_runs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONTROL = "control"


def train_child(job: tuple[str, str, str, str | None, int, float, int]) -> float:
    """Trains one child (``value`` None: the unrestricted control) from the parent; returns its training
    seconds."""
    from hwnas.data.resolve import DatasetSpec
    from hwnas.supernet import training
    from hwnas.supernet.folder import SupernetFolder, SupernetSettings
    from hwnas.supernet.weights import load_supernet
    from hwnas.training import Recipe

    parent_path, out, decision, value, epochs, lr, index = job
    parent = load_supernet(parent_path)

    def restricted(net, settings, rng, epoch=1):
        while True:  # rejection: uniform over the architectures with this value
            arch = net.space.sample(rng)
            if value is None or str(arch[decision]) == value:
                return [arch]

    recipe = Recipe.from_dict({**parent.meta["recipe"], "epochs": epochs, "lr": lr, "warmup_epochs": 0.0})
    settings = SupernetSettings(seed=int(parent.meta["settings"]["seed"]) + 1 + index)  # batches, sampling
    with mock.patch.object(training, "build_supernet", lambda *a, **k: parent.net.train()), \
            mock.patch.object(training, "step_archs", restricted):
        meta = training.train_supernet(SupernetFolder(out), space=parent.space,
                                       spec=DatasetSpec.from_config(parent.meta), recipe=recipe,
                                       settings=settings, threads=1)
    return float(meta["train_time_s"])


def seed_columns(truth: dict[str, dict[int, float]], archs: list[str]) -> list[list[float]]:
    """The accuracies of ``archs`` under each of the reference's first two seeds."""
    seeds = sorted(truth[archs[0]])[:2]
    return [[truth[a][s] for a in archs] for s in seeds]


def estimates_of(folder: str, archs: list[str], threads: int) -> dict[str, float]:
    from hwnas.data.resolve import DatasetSpec
    from hwnas.supernet.estimate import SupernetEstimator

    estimator = SupernetEstimator(folder, threads=threads)
    dataset = DatasetSpec.from_config(estimator.meta).resolve()
    return {a: estimator.estimate(estimator.space.parse(a), dataset).val_accuracy for a in archs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parent", required=True, help="A finished supernet folder.")
    parser.add_argument("--split", default="s3.depth", help="The decision the children split on.")
    parser.add_argument("--epochs", type=int, default=20, help="Epochs each child trains on.")
    parser.add_argument("--lr", type=float, default=0.005, help="Children's learning rate (cosine, no warm-up).")
    parser.add_argument("--reference", action="append", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="Folder of the children (resumed if there).")
    parser.add_argument("--workers", type=int, default=4, help="Children trained side by side.")
    parser.add_argument("--threads", type=int, default=2, help="Threads of the estimates.")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    from scipy.stats import kendalltau

    from hwnas.supernet.weights import load_supernet

    space = load_supernet(args.parent).space
    matching = [d for d in space.decisions if d.label == args.split]
    if not matching:
        parser.error(f"{args.split!r} is not a decision of the {space.name} space")
    values = [str(v) for v in matching[0].choices]
    folders = {v: str(args.work / f"{args.split}={v}") for v in values}
    folders[CONTROL] = str(args.work / CONTROL)
    jobs = [(str(args.parent), folders[v], args.split, None if v == CONTROL else v, args.epochs, args.lr, i)
            for i, v in enumerate(folders)]
    seconds = dict(zip(folders, map_jobs(train_child, jobs, args.workers)))

    references = {str(path): reference_runs(path)[0] for path in args.reference}
    archs = sorted(set.intersection(*(set(r) for r in references.values())))
    by_value = {v: [a for a in archs if str(space.parse(a)[args.split]) == v] for v in values}
    estimates = {"parent": estimates_of(str(args.parent), archs, args.threads),
                 CONTROL: estimates_of(folders[CONTROL], archs, args.threads), "few-shot": {}}
    for v in values:
        estimates["few-shot"].update(estimates_of(folders[v], by_value[v], args.threads))
    rows, taus = [], {}
    for path, truth in references.items():
        seeds = seed_columns(truth, archs)
        mean = np.mean(seeds, axis=0)
        taus[path] = {name: float(kendalltau([est[a] for a in archs], mean)[0]) for name, est in estimates.items()}
        taus[path]["seed vs seed"] = float(kendalltau(*seeds)[0])
        # the split decision's value alone as a ranking (why it was chosen); ordered, so the choice index
        taus[path]["decision alone"] = float(kendalltau([values.index(str(space.parse(a)[args.split]))
                                                         for a in archs], mean)[0])
        rows.append([Path(path).stem] + [round(taus[path][k], 3) for k in ("parent", CONTROL, "few-shot",
                                                                            "seed vs seed", "decision alone")])
    print(f"few-shot split on {args.split} ({len(values)} children, {args.epochs} epochs each at lr {args.lr}); "
          f"{len(archs)} architectures ({', '.join(f'{v}: {len(by_value[v])}' for v in values)})")
    print_table(["reference", "parent", f"control (+{args.epochs} epochs)", "few-shot", "seed vs seed",
                 f"{args.split} alone"], rows)
    groups = []  # per value of the split: the references' mean accuracy, the parent's, seed agreement within
    for v in values:
        row = [f"{args.split}={v}", len(by_value[v])]
        for truth in references.values():
            seeds = seed_columns(truth, by_value[v])
            row += [round(float(np.mean(seeds)), 4),
                    round(float(kendalltau(*seeds)[0]), 3) if len(by_value[v]) > 1 else "-"]
        groups.append(row + [round(float(np.mean([estimates["parent"][a] for a in by_value[v]])), 4)])
    print_table(["group", "archs"] + [f"{Path(p).stem} {what}" for p in references
                                      for what in ("mean", "seed tau within")] + ["parent estimate mean"], groups)
    path = write_result("supernet_fewshot" + (f"-{args.tag}" if args.tag else ""), {
        "parent": str(args.parent), "split": args.split, "values": values, "epochs": args.epochs, "lr": args.lr,
        "children_train_s": seconds, "kendall": taus, "group_sizes": {v: len(a) for v, a in by_value.items()},
        "estimates": estimates, "groups": groups})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
