"""The GPU check: one architecture trained for a fixed number of steps on the CPU and, when CUDA is present, on
``cuda`` with and without mixed precision; images/s and the speed-up over the CPU.

    python benchmarks/gpu.py                 # 3x32x32 inputs (CIFAR-sized), batch 128, 30 timed steps
    python benchmarks/gpu.py --quick         # 10 steps
    python benchmarks/gpu.py --cpu-threads 4 # the CPU row at 4 PyTorch threads (default: 1, hwnas's default)

Each row runs hwnas's own trainer (:func:`hwnas.training.train`: the DataLoader-free in-memory path, channels-last,
the recipe's optimiser and schedule) on synthetic data, after a warm-up training (cuDNN autotuning, CUDA context)
that is not timed. On a machine without a GPU it says so, prints the CPU row, and exits 0. Writes
``benchmarks/results/gpu[-quick].json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_result  # noqa: E402

ARCH = "32:k3e3se.k5e3/48:k5e6.k3e3se/64:k5e6se.k3e6/96:k7e6.k5e6"  # a mid-sized mobilenet at 32x32


class Synthetic:
    """``n`` random 3x32x32 images of 10 classes in memory (the data does not matter for speed)."""

    def __init__(self, n: int) -> None:
        from hwnas.data.base import Splits

        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, 3, 32, 32), dtype=np.float32)
        y = (np.arange(n) % 10).astype(np.int64)
        self.value = Splits(x, y, x[:256], y[:256], x[:0], y[:0])


def _dataset(n: int):
    from hwnas.data.base import Dataset

    class Data(Dataset):
        name = "synthetic"
        input_shape = (3, 32, 32)
        class_names = [str(i) for i in range(10)]
        _splits = Synthetic(n).value

        def splits(self, seed: int = 0):
            return self._splits

    return Data()


def images_per_second(device: str, amp: str, *, steps: int, batch: int, threads: int) -> dict:
    """Trains ``ARCH`` for ``steps`` steps of ``batch`` images (one epoch); images/s of that epoch."""
    from hwnas.spaces import create_space
    from hwnas.training import Recipe, train

    space = create_space("mobilenet")
    data = _dataset(steps * batch)
    recipe = Recipe(amp=amp, batch_size=batch, epochs=1, warmup_epochs=0)
    train(space, space.parse(ARCH), _dataset(2 * batch), recipe=recipe, device=device, threads=threads)  # warm-up
    marks: list[float] = []
    began = time.perf_counter()
    result = train(space, space.parse(ARCH), data, recipe=recipe, device=device, threads=threads,
                   on_epoch=lambda epoch, loss: marks.append(time.perf_counter()))
    seconds = marks[0] - began  # the training epoch (model build and the move to the device included)
    return {"device": result.device, "amp": amp, "steps": steps, "batch": batch, "threads": threads,
            "seconds": seconds, "images_per_s": steps * batch / seconds, "train_loss": result.train_loss}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 timed steps.")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--cpu-threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    steps = 10 if args.quick else args.steps
    rows = [images_per_second("cpu", "off", steps=steps, batch=args.batch, threads=args.cpu_threads)]
    if not torch.cuda.is_available():
        print(f"no CUDA GPU here (PyTorch {torch.__version__}"
              f"{', a CPU-only build' if torch.version.cuda is None else ''}): only the CPU row is measured")
    else:
        print(f"GPU: {torch.cuda.get_device_name(0)}, PyTorch {torch.__version__}, CUDA {torch.version.cuda}")
        for amp in ("off", "bf16", "fp16"):
            rows.append(images_per_second("cuda", amp, steps=steps, batch=args.batch, threads=1))
    cpu = rows[0]["images_per_s"]
    print(f"\n{ARCH}, 3x32x32, batch {args.batch}, {steps} steps")
    print_table(("device", "amp", "threads", "images/s", "speed-up vs CPU", "train loss"),
                [(r["device"], r["amp"], r["threads"], r["images_per_s"], r["images_per_s"] / cpu, r["train_loss"])
                 for r in rows])
    path = write_result("gpu-quick" if args.quick else "gpu", {"arch": ARCH, "rows": rows,
                                                               "cuda": torch.cuda.is_available()})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
