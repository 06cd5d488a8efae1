"""Which device profiles can serve as transfer sources for another device's latency predictor.

A source must hold the same task as the target -- the same space (and space options) at the same input
shape -- and have been measured at the same batch size and precision where both are known (a published table
records neither, so it is not refused on them). The target's own profile is never its source. A profile that
cannot be read, or holds too few records of the task, is skipped with one line saying why.

:func:`estimate_quality` cross-validates the predictor a device's profile gives (``hwnas profile`` prints it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwnas.errors import HwnasError
from hwnas.predictors.transfer import LatencySource
from hwnas.profiling.fingerprint import runtime_of
from hwnas.profiling.store import ProfileStore, list_devices

#: Fewest records of the task a profile needs to be a source.
MIN_SOURCE_RECORDS = 20
#: Fingerprint keys recorded about each source.
_INFO_KEYS = ("source", "provider", "threads", "batch_size", "precision", "cpu_model", "gpu_name", "tables")


@dataclass(frozen=True)
class SourceTask:
    """What a source must match: the target's task and measurement conditions (None: not known)."""

    space: str
    input_shape: tuple[int, int, int]
    space_options: Mapping[str, Any]
    batch_size: int | None = None
    precision: str | None = None


def incompatibility(store: ProfileStore, task: SourceTask, *, held: int | None = None) -> str | None:
    """Why the profile cannot be a source of ``task`` (None: it can); ``held``: its records of the task, when
    counted already."""
    fingerprint = store.fingerprint or {}
    for key, wanted in (("batch_size", task.batch_size), ("precision", task.precision)):
        stored = fingerprint.get(key)
        if wanted is not None and stored is not None and stored != wanted:
            return (f"measured at {key.replace('_', ' ')} {stored}, not {wanted} (only profiles measured alike "
                    f"transfer; name the sources with --transfer-from)")
    count = len(store.records(task.space, task.input_shape, task.space_options)) if held is None else held
    if count < MIN_SOURCE_RECORDS:
        shape = "x".join(map(str, task.input_shape))
        return (f"holds {count} {task.space} latencies at {shape} (a source needs {MIN_SOURCE_RECORDS}: profile more "
                f"architectures into it to use it)")
    return None


def find_sources(profiles_dir: str | os.PathLike, task: SourceTask, *, target: str,
                 names: Sequence[str] | None = None, space_size: int | None = None,
                 report: Callable[[str], None] | None = None, missing_ok: bool = False,
                 limits: Mapping[str, int] | None = None) -> list[LatencySource]:
    """The transfer sources of ``target`` under ``profiles_dir``.

    Args:
        profiles_dir: The profiles folder.
        task: The target's task and conditions.
        target: The target's profile name (never its own source).
        names: The profiles to use (``--transfer-from``); None: every compatible profile.
        space_size: Number of architectures of the space, so a source that holds them all is marked complete.
        report: Receives one line for each profile skipped.
        missing_ok: A profile of ``names`` that does not exist is skipped with a line (a resumed search whose
            source was removed since) instead of refused.
        limits: Read only the first this many records of the task of a profile (a resumed search reads what
            its first session read; profiles are append-only).

    Raises:
        HwnasError: a profile named in ``names`` does not exist (unless ``missing_ok``), or is the target.
    """
    report = report or (lambda line: None)
    known = list_devices(profiles_dir)
    if names is not None:
        missing = [n for n in names if n not in known]
        if missing and missing_ok:
            for name in missing:
                report(f"transfer source {name!r} skipped: no such profile under {profiles_dir} any more (the "
                       f"others are used; restore it to use it again)")
            names = [n for n in names if n in known]
        elif missing:
            raise HwnasError(f"no profile {missing[0]!r} under {profiles_dir} to transfer from (known: "
                             f"{', '.join(known) or 'none'})")
        if target in names:
            raise HwnasError(f"{target!r} cannot be its own transfer source")
    sources: list[LatencySource] = []
    elsewhere: list[str] = []  # profiles of the space at other input shapes or space options
    for name in (list(dict.fromkeys(names)) if names is not None else [n for n in known if n != target]):
        try:
            store = ProfileStore.open(profiles_dir, name)
            records = store.records(task.space, task.input_shape, task.space_options)
            if limits is not None and name in limits:
                records = records[: limits[name]]
            why = incompatibility(store, task, held=len(records))
        except HwnasError as exc:
            report(f"transfer source {name!r} skipped: {exc} (repair or delete that profile)")
            continue
        if why:
            if records or names is not None:  # a profile of other tasks only is not worth a line
                report(f"transfer source {name!r} skipped: {why}")
            elif store.records(task.space):
                elsewhere.append(name)
            continue
        latencies = {r["arch"]: float(r["median_ms"]) for r in records}
        fingerprint = store.fingerprint or {}
        runtime, version = runtime_of(fingerprint)
        info = {key: fingerprint.get(key) for key in _INFO_KEYS if fingerprint.get(key) is not None}
        info.update(runtime=runtime, runtime_version=version, created=fingerprint.get("created"))
        complete = space_size is not None and len(latencies) >= space_size
        sources.append(LatencySource(name, latencies, info=info, complete=complete))
    if not sources and elsewhere:
        shape = "x".join(map(str, task.input_shape))
        report(f"no transfer: {', '.join(elsewhere[:5])}{' ...' if len(elsewhere) > 5 else ''} hold {task.space} "
               f"latencies at other input shapes or space options than {shape}, not this task's")
    return sources


#: Share of architectures within +-10% that the suggestion aims at.
QUALITY_TARGET = 0.90


@dataclass(frozen=True)
class QualityEstimate:
    """A device's latency predictor's quality, cross-validated on its own measurements.

    Attributes:
        n: Own measurements.
        sources: The transfer sources (empty: no transfer).
        within_10pct: Share of held-out architectures predicted within +-10%, at ``n`` (trained on 4/5 of them).
        spearman: Rank correlation of held-out predictions, at ``n``.
        half_within_10pct: The same share cross-validated on half the records (None below 10 measurements).
        model: The candidate chosen (``transfer``, ``additive``, ``xgboost``).
        offered: Transfer sources there were (transfer may have lost the cross-validation).
    """

    n: int
    sources: tuple[str, ...]
    within_10pct: float
    spearman: float
    half_within_10pct: float | None
    model: str = "xgboost"
    offered: int = 0

    def suggestion(self) -> str:
        """How many more measurements would help, from the gain of the last doubling."""
        if self.within_10pct >= QUALITY_TARGET:
            return f"within +-10% on at least {QUALITY_TARGET:.0%}: more measurements refine little"
        gain = None if self.half_within_10pct is None else self.within_10pct - self.half_within_10pct
        if gain is None or gain < 0.02:
            seen = "" if gain is None else f" (doubling them gained {100 * gain:.0f} points)"
            return (f"more measurements help little{seen}: the measurements' own noise, or sources unlike this "
                    f"device, limit it" + ("" if self.sources or self.offered else "; other devices' profiles of "
                                           "this task would let it transfer"))
        doublings = min(4, int(np.ceil((QUALITY_TARGET - self.within_10pct) / gain - 1e-9)))
        more = self.n * (2 ** doublings - 1)
        return (f"about {more} more measurements should bring it near {QUALITY_TARGET:.0%} (the last doubling "
                f"gained {100 * gain:.0f} points)")

    def summary(self) -> str:
        own = "additive per-operator model" if self.model == "additive" else "XGBoost"
        why = (f", which cross-validated better than transfer from {self.offered} profile(s)" if self.offered
               else "" if self.model != "xgboost" else ", no transfer source")
        how = (f"transferred from {len(self.sources)} profile(s)" if self.sources
               else f"on its own measurements ({own}{why})")
        return (f"latency predictor {how}, cross-validated on {self.n} own measurements: "
                f"{100 * self.within_10pct:.0f}% within +-10%, Spearman {self.spearman:.3f}; {self.suggestion()}")


def estimate_quality(records: Sequence[Mapping[str, Any]], sources: Sequence[LatencySource], *, space: str,
                     space_options: Mapping[str, Any], input_shape: Sequence[int], num_classes: int,
                     seed: int = 0, folds: int = 5, transfer: bool = True) -> QualityEstimate | None:
    """Cross-validates the latency predictor a search would fit on ``records`` (a profile's own, with
    ``sources`` to transfer from; :class:`~hwnas.predictors.select.SelectedLatencyPredictor`; XGBoost alone
    without ``transfer``): the candidate it chooses, at all of the records and at half of them (None: fewer
    than 5 records)."""
    from hwnas.predictors.metrics import spearman, within
    from hwnas.predictors.select import SelectedLatencyPredictor, cross_validate

    archs = [r["arch"] for r in records]
    y = np.array([float(r["median_ms"]) for r in records])
    if len(archs) < 5:
        return None
    selector = SelectedLatencyPredictor(sources, space=space, space_options=dict(space_options),
                                        input_shape=list(input_shape), num_classes=num_classes, random_state=seed,
                                        candidates=None if transfer else ["xgboost"])
    selector.fit(archs, y)
    make = selector.factories(scoring=True)[selector.chosen_]
    full = selector.out_of_fold_.get(selector.chosen_)  # the selection's own cross-validation, when it ran one
    if full is None:
        full = cross_validate(make, archs, y, folds=folds, seed=seed)
    half_score = None
    if len(y) >= 10:
        subset = np.random.default_rng(seed).choice(len(y), size=len(y) // 2, replace=False)
        half = cross_validate(make, [archs[i] for i in subset], y[subset], folds=folds, seed=seed)
        half_score = within(y[subset], half, 0.10)
    return QualityEstimate(n=len(y), sources=tuple(s.name for s in sources) if selector.chosen_ == "transfer"
                           else (), within_10pct=within(y, full, 0.10), spearman=spearman(y, full),
                           half_within_10pct=half_score, model=selector.chosen_,
                           offered=len(sources) if transfer else 0)
