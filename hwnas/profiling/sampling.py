"""Choosing which architectures to profile so that they cover the space's whole latency range.

Uniform sampling per decision crowds the middle of the size distribution (a sum of many independent choices
is close to normal), so a predictor trained on it knows little about the smallest and largest models --
exactly where latency budgets bite. Here:

1. a *pool* of candidates is drawn: uniform samples, plus two mutation walks that push from the pool's
   smallest model down and from its largest model up (so the tails are represented even in huge spaces);
2. each candidate's size (MACs by default, a cheap stand-in for latency; any ``size_fn`` can be passed) is
   put on a log scale, and the range is cut into equal-width strata;
3. picks go one at a time to the stratum holding the fewest architectures so far -- counting those already
   in the profile -- so a new run fills the gaps a previous run left, and the result is close to uniform over
   the (log) size range.

Everything is driven by the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import heapq
import logging
import math
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from hwnas.arch import Arch
from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace

logger = logging.getLogger(__name__)

SizeFn = Callable[[Arch], float]


def model_macs(space: SearchSpace, arch: Arch, input_shape: Sequence[int], num_classes: int) -> float:
    """Multiply-accumulates of ``arch`` for one input, counted on a whole built model (~15 ms)."""
    from hwnas.nn.analysis import analyse
    from hwnas.profiling.measure import torch_single_thread

    with torch_single_thread():
        return float(analyse(space.build(arch, input_shape, num_classes), input_shape).macs)


def macs_size_fn(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> SizeFn:
    """A :data:`SizeFn` giving the MACs of an architecture at a fixed input shape.

    A model is the sequence of its units (:meth:`SearchSpace.units`), so its MACs are the sum of theirs; each
    distinct unit (or part of one, :meth:`SearchSpace.unit_parts`) is built and counted once (shapes only, on
    the ``meta`` device) and cached, which makes an architecture a few look-ups once its units have been
    seen. Equal to :func:`model_macs`.
    """
    from hwnas.nn.analysis import analyse

    cache: dict = {}

    def unit_macs(unit) -> float:
        macs = cache.get(unit)
        if macs is None:
            parts = space.unit_parts(unit)  # a cell is the sum of its operations
            if parts is not None:
                macs = sum(unit_macs(part) for part in parts)
            else:
                with torch.device("meta"):
                    module = space.build_unit(unit)
                macs = float(analyse(module, unit.in_shape, device="meta").macs)
            cache[unit] = macs
        return macs

    return lambda arch: sum(unit_macs(unit) for unit in space.units(arch, input_shape, num_classes))


def _draw_pool(space: SearchSpace, count: int, rng: np.random.Generator, exclude: set[str]) -> list[Arch]:
    if space.size() <= count + len(exclude):
        return [a for a in space.enumerate() if a.string not in exclude]
    pool: dict[str, Arch] = {}
    attempts = 0
    while len(pool) < count and attempts < 20 * count + 100:
        attempts += 1
        arch = space.sample(rng)
        if arch.string not in exclude:
            pool.setdefault(arch.string, arch)
    return list(pool.values())


def _walk(space: SearchSpace, start: Arch, steps: int, sign: float, rng: np.random.Generator,
          size: Callable[[Arch], float], known: dict[str, float], exclude: set[str]) -> list[Arch]:
    """A greedy mutation walk: keeps a mutant when it is smaller (``sign=-1``) or larger (``sign=+1``)."""
    current, found = start, []
    for _ in range(steps):
        mutant = space.mutate(current, rng)
        if mutant.string in exclude:
            continue
        if mutant.string not in known:
            known[mutant.string] = size(mutant)
            found.append(mutant)
        if sign * known[mutant.string] > sign * known[current.string]:
            current = mutant
    return found


def stratified_sample(space: SearchSpace, count: int, *, rng: np.random.Generator, size_fn: SizeFn,
                      existing: Iterable[Arch | str] = (), pool_factor: float = 2.0,
                      walk_share: float = 0.3,
                      progress: Callable[[int, int], None] | None = None) -> list[Arch]:
    """``count`` new architectures, spread evenly over the log-size range together with ``existing`` ones.

    Args:
        space: The search space.
        count: Number of architectures to pick (not counting ``existing``).
        rng: Random generator (the pick is deterministic for a given state).
        size_fn: Size of an architecture (e.g. MACs), positive; a monotone stand-in for latency.
        existing: Architectures already measured: never picked again; they fill their strata.
        pool_factor: Candidates drawn per architecture to pick (more = better coverage, slower).
        walk_share: Share of the candidate budget spent on the two tail-seeking mutation walks.
        progress: Called with the number of sizes computed so far and the expected total, for a progress
            display.

    Returns:
        The picked architectures, in pick order (sizes mixed, which keeps progress estimates honest).

    Raises:
        HwnasError: the space does not hold ``count`` architectures beyond ``existing``.
    """
    if count <= 0:
        return []
    done = [a if isinstance(a, Arch) else space.parse(a) for a in existing]
    exclude = {a.string for a in done}
    if space.size() - len(exclude) < count:
        raise HwnasError(f"the {space.name} space holds only {space.size()} architectures, "
                         f"{len(exclude)} of them already profiled; cannot add {count}")
    budget = max(int(math.ceil(pool_factor * count)), count + 20)
    walk_steps = int(budget * walk_share) // 2
    known: dict[str, float] = {}
    computed = 0

    expected = budget + len(done)

    def size(arch: Arch) -> float:
        nonlocal computed
        value = float(size_fn(arch))
        computed += 1
        if progress is not None:
            progress(computed, max(expected, computed))
        return value

    pool = _draw_pool(space, budget - 2 * walk_steps, rng, exclude)
    for arch in pool:
        known[arch.string] = size(arch)
    for arch in done:
        known[arch.string] = size(arch)
    if walk_steps and len(pool) > 1 and len(pool) < space.size():
        smallest = min(pool, key=lambda a: known[a.string])
        largest = max(pool, key=lambda a: known[a.string])
        pool += _walk(space, smallest, walk_steps, -1.0, rng, size, known, exclude)
        pool += _walk(space, largest, walk_steps, +1.0, rng, size, known, exclude)
    if len(pool) < count:
        raise HwnasError(f"could only draw {len(pool)} new {space.name} architectures, {count} needed")

    def position(arch: Arch) -> float:
        return math.log(max(known[arch.string], 1e-12))

    values = [position(a) for a in pool] + [position(a) for a in done]
    lo, hi = min(values), max(values)
    strata = max(count + len(done), 1)
    width = (hi - lo) / strata if hi > lo else 1.0

    def stratum(arch: Arch) -> int:
        return min(int((position(arch) - lo) / width), strata - 1)

    filled = np.zeros(strata, dtype=np.int64)
    for arch in done:
        filled[stratum(arch)] += 1
    candidates: dict[int, list[Arch]] = {}
    for index in rng.permutation(len(pool)):
        arch = pool[int(index)]
        candidates.setdefault(stratum(arch), []).append(arch)
    tie_break = rng.permutation(strata)
    heap = [(int(filled[s]), int(tie_break[s]), s) for s in candidates]
    heapq.heapify(heap)
    picked: list[Arch] = []
    while len(picked) < count:
        filled_now, tie, best = heapq.heappop(heap)  # the emptiest stratum that still has candidates
        picked.append(candidates[best].pop())
        if candidates[best]:
            heapq.heappush(heap, (filled_now + 1, tie, best))
    logger.info("picked %d %s architectures from %d candidates (%d sizes computed)", len(picked), space.name,
                len(pool), computed)
    return picked
