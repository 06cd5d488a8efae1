"""Real verification: the round's queue measured in order, the candidates within the budget trained, and the
finalists' extra seeds trained.

Measurements and trainings never overlap, so no latency is taken beside a training. The state is saved after
every measurement, the selection, and every finished training, so a resumed run continues exactly where it
stopped; re-verifying a candidate whose training had finished costs a store look-up, not a training.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from hwnas.arch import Arch
from hwnas.cluster import SerialExecutor
from hwnas.search.context import RunContext
from hwnas.search.events import FinalistTrained, LatencyMeasured, Trained, TrainingStarted
from hwnas.search.planning import FALLBACK
from hwnas.search.state import AccuracySource, Measured, SearchError, Verified


class Verifier:
    """Measures and trains what the planner queued.

    Args:
        context: The run.
        accuracy_source: Real accuracy (trainings or table look-ups).
        executor: Where trainings run (:mod:`hwnas.cluster`; this process, one at a time, by default).
    """

    def __init__(self, context: RunContext, accuracy_source: AccuracySource, executor=None,
                 refill: Callable[[int], list[str]] | None = None) -> None:
        self.ctx = context
        self.accuracy_source = accuracy_source
        self.executor = executor or SerialExecutor()
        self.refill = refill

    def work_queue(self, *, round_index: int) -> None:
        """Measures the queue's candidates in order, selecting those within the budget while their group has
        slots left (a fallback candidate takes any group's), then trains the selected ones (side by side with a
        parallel executor)."""
        self.select(round_index)
        self.train_selected(round_index)

    def select(self, round_index: int) -> None:
        ctx, state = self.ctx, self.ctx.state
        trained = ctx.trained_keys() | {ctx.key(t["arch"]) for t in state.training}
        prior = dict(ctx.latency_source.known())  # read once: a profile's records come from its files
        while state.pending and any(state.slots):
            if ctx.time_spent():  # nothing measured that could not be trained
                break
            string, group = state.pending[0], state.pending_group[0]
            slot = _slot(state.slots, group)
            worked = False
            if slot is not None and ctx.key(string) not in trained:
                before = state.measurements
                latency = self.latency(string, round_index, prior)
                if latency is None:  # the measurement budget is spent
                    break
                worked = state.measurements > before
                if latency["latency_ms"] <= ctx.settings.budget_ms:
                    state.training.append({"arch": string, "latency_ms": float(latency["latency_ms"]),
                                           "measured": bool(latency["measured"])})
                    trained.add(ctx.key(string))
                    state.slots[slot] -= 1
                    worked = True
            state.pending.pop(0)
            state.pending_group.pop(0)
            if worked:  # a skipped candidate is skipped again after a resume: no write needed
                ctx.save()
            if not any(state.slots):
                break
            if not state.pending and self.refill is not None and state.refilled_round != round_index:
                # the queue ran out with slots left: once a round, the fallback refills it (saved with it, so a
                # resume goes on with the same candidates)
                state.refilled_round = round_index
                state.pending = [a for a in self.refill(round_index) if ctx.key(a) not in trained]
                state.pending_group = [FALLBACK] * len(state.pending)
                ctx.save()

    def train_selected(self, round_index: int) -> None:
        """Trains the selected candidates through the executor; each finished training is recorded (and the
        state saved) as it comes back, and the round's records end in selection order whatever the order they
        finished in, so a parallel run's state is the serial run's."""
        ctx, state = self.ctx, self.ctx.state
        todo = list(state.training)
        if not todo:
            return
        ctx.estimate([t["arch"] for t in todo])  # every trained architecture is estimated too: calibration
        first = len(state.verified)

        def record(index: int, result: dict) -> None:
            candidate = todo[index]
            predicted = state.pending_predictions.get(candidate["arch"], [None, None])
            state.verified.append(Verified(
                arch=candidate["arch"], accuracy=_accuracy(result, candidate["arch"]),
                latency_ms=candidate["latency_ms"],
                latency_measured=candidate["measured"], round=round_index, predicted_accuracy=predicted[0],
                predicted_latency_ms=predicted[1], measurements_used=state.measurements,
                elapsed_s=round(ctx.elapsed(), 2), **self._trial_facts(candidate["arch"], result)))
            state.training.remove(candidate)
            ctx.save()
            ctx.callback(Trained(record=state.verified[-1], best=ctx.best(), measurements=state.measurements))

        self._run([t["arch"] for t in todo], [self.accuracy_source] * len(todo), record,
                  used=lambda: len(state.verified), limit=ctx.search_trainings, round_index=round_index)
        order = {t["arch"]: i for i, t in enumerate(todo)}
        batch = state.verified[first:]
        batch.sort(key=lambda v: order.get(v.arch, len(order)))
        state.verified[first:] = batch
        ctx.save()

    def _trial_facts(self, arch: str, result: Mapping[str, Any]) -> dict[str, Any]:
        """What a training reported beyond its accuracy (parameters, MACs, seconds, test accuracy, seed); none of
        it for a table look-up."""
        if not getattr(self.accuracy_source, "trains", False):
            return {}
        facts: dict[str, Any] = {"seed": result.get("seed"), "test_accuracy": result.get("test_accuracy"),
                                 "train_seconds": result.get("wall_time_s")}
        built = self.ctx.model_facts(arch)
        facts["params"] = result.get("params") or built.get("params")
        facts["macs"] = built.get("macs")
        return facts

    def train_finalists(self, todo: Sequence[tuple[str, int]]) -> None:
        """Trains each ``(finalist, replica)`` with the accuracy source's replica ``replica`` (another training
        seed), recording each as it comes back."""
        ctx, state = self.ctx, self.ctx.state
        sources = [self.accuracy_source.replica(replica) for _, replica in todo]

        def record(index: int, result: dict) -> None:
            arch, replica = todo[index]
            state.finals.append({"arch": arch, "replica": replica, "accuracy": _accuracy(result, arch)})
            ctx.save()
            ctx.callback(FinalistTrained(arch=arch, replica=replica, seeds=state.final_seeds,
                                         accuracy=float(result["accuracy"])))

        self._run([arch for arch, _ in todo], sources, record, used=lambda: state.trainings,
                  limit=ctx.settings.max_trainings, round_index=None)
        position = {(a, r): i for i, (a, r) in enumerate(todo)}
        state.finals.sort(key=lambda f: position.get((f["arch"], int(f["replica"])), -1))
        ctx.save()

    def _run(self, archs: list[str], sources: list, record: Callable[[int, dict], None], *,
             used: Callable[[], int], limit: int, round_index: int | None) -> None:
        """Runs the trainings of ``archs`` (each with its source) through the executor while the training
        budget (``used()`` below ``limit``) and the time budget last; ``record(index, result)`` as each
        comes back."""
        ctx = self.ctx
        jobs, finishers = zip(*(self._job(source, arch) for arch, source in zip(archs, sources)))
        running = [0]  # trainings started and not back yet (a parallel executor runs several)

        def may_start(index: int) -> bool:
            # the training and time budgets only: the measurement budget stops measuring, never a selected
            # candidate's training
            if used() + running[0] >= limit or ctx.time_spent():
                return False
            running[0] += 1
            ctx.callback(TrainingStarted(arch=archs[index], round=round_index if round_index is not None else -1,
                                         trainings=ctx.state.trainings))
            return True

        for index, output in self.executor.run(list(jobs), may_start=may_start):
            running[0] -= 1
            record(index, finishers[index](ctx.space.parse(archs[index]), output))

    def _job(self, source: AccuracySource, string: str):
        """The training of ``string`` as a job for the executor, and what turns its output into the accuracy
        source's ``{"accuracy": ...}`` (a source without jobs, or one that knows the answer, is asked here)."""
        arch = self.ctx.space.parse(string)
        make = getattr(source, "job", None)
        job = make(arch) if make is not None else None
        if job is not None:
            return job, source.finish
        return _LocalJob(source.evaluate, arch), lambda arch, output: output

    def latency(self, string: str, round_index: int, prior: dict[str, float]) -> dict | None:
        """The candidate's latency: known (``prior``: the profile or table prior, or measured by this run) or
        measured now (counted against ``max_measurements``; None when that budget is spent, which the loop
        then reports)."""
        ctx, state = self.ctx, self.ctx.state
        for record in state.measured:
            if record.arch == string:
                return {"latency_ms": record.latency_ms, "measured": record.measured}
        if string in prior:
            return {"latency_ms": float(prior[string]), "measured": True}
        if state.measurements >= ctx.settings.measurement_cap:
            return None
        result = ctx.latency_source.measure(ctx.space.parse(string))
        predicted = state.pending_predictions.get(string, [None, None])[1]
        # saved with the queue's next step: a kill before that measures again (a profile or table look-up)
        state.measured.append(Measured(
            arch=string, latency_ms=float(result["latency_ms"]), round=round_index,
            measured=bool(result["measured"]), predicted_latency_ms=predicted))
        feasible = result["latency_ms"] <= ctx.settings.budget_ms
        ctx.callback(LatencyMeasured(arch=string, latency_ms=float(result["latency_ms"]), feasible=feasible,
                                     measurements=state.measurements))
        return {"latency_ms": float(result["latency_ms"]), "measured": bool(result["measured"])}


def _slot(slots: list[int], group: int) -> int | None:
    """The slot group a candidate of ``group`` trains in: its own while it has slots; a fallback candidate takes
    the first group with slots left."""
    if group == FALLBACK:
        return next((g for g, n in enumerate(slots) if n > 0 and g != FALLBACK), None)
    return group if group < len(slots) and slots[group] > 0 else None


class _LocalJob:
    """A training the driver runs itself (a table look-up, a stored record, a user's function)."""

    local = True

    def __init__(self, evaluate: Callable, arch: Arch) -> None:
        self.evaluate = evaluate
        self.arch = arch

    def __call__(self) -> dict:
        return self.evaluate(self.arch)


def _accuracy(result: Mapping[str, Any], arch: str) -> float:
    """The accuracy an accuracy source answered, refused (before anything is stored) unless it is a fraction."""
    accuracy = float(result["accuracy"])
    if not 0.0 <= accuracy <= 1.0:
        raise SearchError(f"the accuracy source gave {result['accuracy']!r} for {arch}: an accuracy is a fraction "
                          f"between 0 and 1, not a percentage")
    return accuracy
