"""The data pipeline of a training, measured side by side on this machine (``training.py --pipeline``):

(a) the trainer's images/s against a minimal plain PyTorch loop (same model, batch, optimiser, one thread), with
    the plain loop in both memory layouts (PyTorch's default NCHW, and the channels-last layout the trainer uses);
(b) peak memory of one epoch over an on-disk image folder of 4,000 vs 16,000 32x32 RGB images, streamed (and, for
    contrast, decoded into memory): each in a fresh process, the training process's and its loader workers' peaks;
(c) an epoch over the streamed image folder with 2 loader workers against the same epoch from memory.

Every run is one training thread; a training's images are CIFAR-sized synthetic PNGs (a class colour in noise),
written once under ``benchmarks/results/pipeline-data``.
"""

from __future__ import annotations

import multiprocessing
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from _common import RESULTS, print_table, write_result

ARCH = "16:k3e1se.k7e1se/48:k7e6.k3e1se/48:k5e3.k3e1se.k7e1/64:k7e1"  # a make-run answer on cluttered-digits
SHAPE = (3, 32, 32)
CLASSES = 10


def make_folder(root: Path, count: int) -> Path:
    """``count`` 32x32 RGB PNGs in ``CLASSES`` class folders (kept: made once)."""
    from PIL import Image

    folder = root / f"images-{count}"
    done = folder / ".complete"
    if done.exists():
        return folder
    rng = np.random.default_rng(count)
    for i in range(count):
        label = i % CLASSES
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        pixels[8:24, 8:24, label % 3] = 40 + 20 * label
        path = folder / f"c{label}" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    done.write_text("")
    return folder


def _dataset(folder: Path, stream: bool):
    from hwnas.data import ImageFolderDataset

    return ImageFolderDataset(folder, input_shape=SHAPE, val_fraction=0.05, test_fraction=0.0, stream=stream)


def _epoch_times(folder: Path, *, stream: bool, epochs: int, workers: int | None) -> dict:
    """Trains ``ARCH`` for ``epochs`` over the folder; seconds of each epoch (training only) and of the set-up."""
    from hwnas.spaces import create_space
    from hwnas.training import Recipe, train

    began = time.perf_counter()
    data = _dataset(folder, stream)
    data.splits(0)  # decoded here when in memory
    loaded = time.perf_counter() - began
    marks: list[float] = []
    start = time.perf_counter()
    space = create_space("mobilenet")
    result = train(space, space.parse(ARCH), data, recipe=Recipe(epochs=epochs), seed=0, threads=1,
                   loader_workers=workers, on_epoch=lambda epoch, loss: marks.append(time.perf_counter()))
    seconds = np.diff([start] + marks).tolist()
    return {"load_s": loaded, "epoch_s": seconds, "images": len(data.splits(0).y_train),
            "val_accuracy": result.val_accuracy}


def _peak_job(folder: str, stream: bool, queue) -> None:
    import torch

    torch.set_num_threads(1)
    result = _epoch_times(Path(folder), stream=stream, epochs=1, workers=2)
    result["peak_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_workers_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    queue.put(result)


def peak_memory(folder: Path, *, stream: bool) -> dict:
    """One epoch in a fresh process; its peak resident memory and its loader workers' (largest)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_peak_job, args=(str(folder), stream, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def plain_loop(x, y, *, epochs: int, batch_size: int, channels_last: bool) -> list[float]:
    """A minimal PyTorch loop: the same model, AdamW at the recipe's rate, cross-entropy, shuffled batches."""
    import torch

    from hwnas.spaces import create_space

    torch.manual_seed(0)
    space = create_space("mobilenet")
    model = space.build(space.parse(ARCH), SHAPE, CLASSES)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    seconds = []
    for _ in range(epochs):
        began = time.perf_counter()
        for index in torch.randperm(len(labels)).split(batch_size):
            batch = inputs[index].contiguous(memory_format=layout)
            loss = criterion(model(batch), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - began)
    return seconds


def run_pipeline(*, quick: bool, parts: str = "abc") -> int:
    import torch

    torch.set_num_threads(1)
    root = RESULTS / "pipeline-data"
    small, large = (400, 1600) if quick else (4000, 16000)
    epochs = 3
    out: dict = {"quick": quick, "arch": ARCH, "threads": 1, "sizes": [small, large], "parts": parts}
    folders = {n: make_folder(root, n) for n in (small, large)}
    if "a" in parts:
        out["throughput"] = _throughput(make_folder(root, 400 if quick else 1000), epochs=epochs,
                                        repeats=2 if quick else 7)
    if "b" in parts:
        out["memory"] = _memory(folders, small, large)
    if "c" in parts:
        out["streaming_speed"] = _speed(folders[small], epochs=epochs)
    name = "training-pipeline" + ("-quick" if quick else "") + ("" if parts == "abc" else f"-{parts}")
    path = write_result(name, out)
    print(f"\nwrote {path}")
    return 0


def _throughput(folder: Path, *, epochs: int, repeats: int) -> dict:
    """(a) the trainer against a plain loop, side by side, alternating, ``repeats`` times; each rate is the median
    epoch after the first (which holds the model's construction and the first steps' one-off allocations)."""
    data = _dataset(folder, stream=False).splits(0)
    plain_loop(data.x_train[:256], data.y_train[:256], epochs=1, batch_size=32, channels_last=True)  # warm-up
    rows, ratios = [], []
    for repeat in range(repeats):
        trainer = _epoch_times(folder, stream=False, epochs=epochs, workers=None)
        nchw = plain_loop(data.x_train, data.y_train, epochs=epochs, batch_size=32, channels_last=False)
        nhwc = plain_loop(data.x_train, data.y_train, epochs=epochs, batch_size=32, channels_last=True)
        n = len(data.y_train)
        rates = [n / statistics.median(t[1:]) for t in (trainer["epoch_s"], nchw, nhwc)]
        ratios.append(rates[0] / max(rates[1:]))
        rows.append((repeat + 1, *rates, ratios[-1]))
    print(f"(a) images/s, {len(data.y_train)} images of 3x32x32, batch 32, 1 thread, median of epochs 2..{epochs}, "
          f"trainer and plain loops alternating")
    print_table(("repeat", "trainer", "plain NCHW", "plain channels-last", "trainer / best plain"), rows)
    ratio = statistics.median(ratios)
    low, high = np.percentile(ratios, [25, 75])
    print(f"    median ratio {ratio:.3f} (quartiles {low:.3f}-{high:.3f}; target >= 0.9: "
          f"{'met' if ratio >= 0.9 else 'MISSED'})")
    return {"rows": [dict(zip(("repeat", "trainer", "plain_nchw", "plain_channels_last", "ratio"), r))
                     for r in rows], "median_ratio": ratio, "quartiles": [low, high]}


def _memory(folders: dict, small: int, large: int) -> dict:
    """(b) peak memory of one epoch, streamed and in memory, each in a fresh process."""
    rows, peaks = [], {}
    for stream in (True, False):
        for n in (small, large):
            r = peak_memory(folders[n], stream=stream)
            peaks[(stream, n)] = r
            rows.append(("streamed" if stream else "in memory", n, r["peak_self_mb"], r["peak_workers_mb"],
                         sum(r["epoch_s"])))
    print("\n(b) peak resident memory of one epoch (MB): the training process, and its largest loader worker")
    print_table(("path", "images", "training MB", "worker MB", "epoch s"), rows)
    ratio_b = peaks[(True, large)]["peak_self_mb"] / peaks[(True, small)]["peak_self_mb"]
    contrast = peaks[(False, large)]["peak_self_mb"] / peaks[(False, small)]["peak_self_mb"]
    print(f"    streamed {large} vs {small}: {ratio_b:.3f}x (target <= 1.3: {'met' if ratio_b <= 1.3 else 'MISSED'}); "
          f"in memory: {contrast:.3f}x")
    return {"rows": [dict(zip(("path", "images", "training_mb", "worker_mb", "epoch_s"), r)) for r in rows],
            "streamed_ratio": ratio_b, "in_memory_ratio": contrast}


def _speed(folder: Path, *, epochs: int) -> dict:
    """(c) an epoch streamed with 2 loader workers against the same epoch from memory."""
    memory = _epoch_times(folder, stream=False, epochs=epochs, workers=None)
    streamed = _epoch_times(folder, stream=True, epochs=epochs, workers=2)
    steady = statistics.median(streamed["epoch_s"][1:] or streamed["epoch_s"]) / \
        statistics.median(memory["epoch_s"][1:] or memory["epoch_s"])
    first = streamed["epoch_s"][0] / memory["epoch_s"][0]
    print(f"\n(c) epoch seconds, {memory['images']} images: in memory {memory['epoch_s']} (decoded first in "
          f"{memory['load_s']:.1f} s), streamed with 2 workers {streamed['epoch_s']}")
    print(f"    streamed / in memory: {steady:.3f}x after the first epoch, {first:.3f}x in the first (workers "
          f"start); target <= 1.5: {'met' if max(steady, first) <= 1.5 else 'MISSED'}")
    return {"in_memory": memory, "streamed": streamed, "steady_ratio": steady, "first_epoch_ratio": first}
