"""Where work runs: this process (:class:`SerialExecutor`), or a Ray cluster (:class:`RayExecutor`): trainings as
Ray tasks side by side. A device node of the cluster measures latencies (:mod:`hwnas.devices.ray`).

The search and the profiler hand an executor *jobs*: picklable callables (a
:class:`~hwnas.training.job.TrainingJob`, a measurement) whose results come back to the driver, which alone
writes the run folder, the evaluation store and the device profiles. A job marked ``local = True`` (a table
look-up, a user's Python function) runs on the driver.

Ray (``pip install 'hwnas[ray]'``) is optional: without it, ``--ray`` fails with one line naming the extra.
A device joins a cluster as a node that advertises ``device:<name>`` and no CPUs::

    ray start --address HEAD:6379 --num-cpus 0 --resources '{"device:pi4": 1}'

Measurement tasks ask for that resource (one at a time: it counts 1) and no CPU, trainings ask for CPUs, so a
measurement never shares its machine with a training. A device node that offers CPUs is refused.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Iterator, Sequence

from hwnas.errors import HwnasError

logger = logging.getLogger(__name__)

#: Ray retries a task whose worker died this many times (a training that raises is not retried: that is a bug,
#: or bad data, and the same seed raises again).
TASK_RETRIES = 3
DEVICE_RESOURCE = "device:{}"


class ClusterError(HwnasError):
    """Ray is missing, unreachable, or the cluster cannot run what is asked."""


def _always(index: int) -> bool:
    return True


class SerialExecutor:
    """Runs jobs one after another in this process (hwnas's default)."""

    workers = 1
    kind = "serial"

    def run(self, jobs: Sequence[Callable[[], Any]], *,
            may_start: Callable[[int], bool] = _always) -> Iterator[tuple[int, Any]]:
        """Yields ``(index, result)`` for each job, in order; stops starting jobs when ``may_start(index)`` is
        false (the time budget is spent)."""
        for index, job in enumerate(jobs):
            if not may_start(index):
                return
            yield index, job()

    def close(self) -> None:
        pass


def import_ray():
    """The ``ray`` module, or one line naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ClusterError("--ray needs Ray: pip install 'hwnas[ray]' (or: pip install ray)") from None
    return ray


class RayExecutor:
    """Runs jobs as Ray tasks, ``workers`` at a time, and gathers them as they finish.

    Args:
        address: An existing cluster (``auto``, ``HOST:PORT``) or None: a local Ray started for this process on
            127.0.0.1 (no dashboard) and stopped by :meth:`close`.
        workers: Trainings running at once.
        cpus_per_task: CPUs a training asks for (its PyTorch threads).
        gpus_per_task: GPUs a training asks for (0: none).
    """

    kind = "ray"

    def __init__(self, address: str | None = None, *, workers: int = 2, cpus_per_task: int = 1,
                 gpus_per_task: float = 0) -> None:
        self.ray = ray = import_ray()
        self.workers = int(workers)
        self.cpus_per_task = int(cpus_per_task)
        self.gpus_per_task = float(gpus_per_task)
        self._started = not ray.is_initialized()
        if self._started:
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                          logging_level=logging.WARNING, configure_logging=False)
            try:
                if address is None:
                    ray.init(num_cpus=max(self.workers * self.cpus_per_task, 1), _node_ip_address="127.0.0.1",
                             **kwargs)
                else:
                    ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc}") from None
        self._check_device_nodes()
        self._check_gpus()
        self._task = ray.remote(_run_job).options(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
                                                  max_retries=TASK_RETRIES, retry_exceptions=False)

    def _check_device_nodes(self) -> None:
        for node in self.ray.nodes():
            resources = node.get("Resources", {}) if node.get("Alive", True) else {}
            devices = [k for k in resources if k.startswith("device:")]
            if devices and resources.get("CPU", 0) > 0:
                raise ClusterError(f"node {node.get('NodeManagerAddress')} advertises {devices[0]} and "
                                   f"{resources['CPU']:g} CPUs: a training could run beside its measurements; "
                                   f"start it with 'ray start --num-cpus 0 --resources ...'")

    def _check_gpus(self) -> None:
        """Refuses a GPU reservation no node of the cluster can give (Ray would wait for it forever)."""
        if self.gpus_per_task <= 0:
            return
        largest = max((float(n.get("Resources", {}).get("GPU", 0)) for n in self.ray.nodes() if n.get("Alive", True)),
                      default=0.0)
        if largest < self.gpus_per_task:
            if self._started:
                self.ray.shutdown()
            raise ClusterError(f"--gpus-per-training {self.gpus_per_task:g}: no node of the Ray cluster has that "
                               f"many GPUs (the most on one node: {largest:g}); a training would wait forever")

    def run(self, jobs: Sequence[Callable[[], Any]], *,
            may_start: Callable[[int], bool] = _always) -> Iterator[tuple[int, Any]]:
        """Yields ``(index, result)`` as jobs finish, at most ``workers`` running; a job's own exception is
        raised as itself; a worker lost more than :data:`TASK_RETRIES` times is a :class:`ClusterError`.
        Interrupted (Ctrl-C, an error), the jobs still running are cancelled."""
        ray = self.ray
        running: dict[Any, int] = {}
        queue = list(enumerate(jobs))
        try:
            while queue or running:
                while queue and len(running) < self.workers and may_start(queue[0][0]):
                    index, job = queue.pop(0)
                    if getattr(job, "local", False):  # a look-up: no task needed
                        yield index, job()
                        continue
                    running[self._task.remote(job)] = index
                if not running:
                    return
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    index = running.pop(ref)
                    try:
                        result = ray_get(ray, ref, failure="Ray could not run a job")
                    except BaseException:
                        yield from self._finished(running)  # nothing finished is lost to the error
                        raise
                    yield index, result
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    def _finished(self, running: dict[Any, int]) -> Iterator[tuple[int, Any]]:
        """``(index, result)`` of the running tasks that have already succeeded (taken out of ``running``)."""
        ready, _ = self.ray.wait(list(running), num_returns=len(running), timeout=0) if running else ([], [])
        for ref in ready:
            index = running.pop(ref)
            try:
                result = ray_get(self.ray, ref, failure="Ray could not run a job")
            except BaseException:
                continue
            yield index, result

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()


def ray_get(ray, ref, *, failure: str) -> Any:
    """A task's result; its own exception raised as itself, a worker lost beyond the retries or any other Ray
    error as one :class:`ClusterError` line (``failure`` says what failed), never Ray's traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else None
        raise (cause or ClusterError(str(exc).splitlines()[0])) from None
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.TaskCancelledError) as exc:
        raise ClusterError(f"a Ray worker was lost {TASK_RETRIES + 1} times running one job: "
                           f"{str(exc).splitlines()[0]}") from None
    except ray.exceptions.RayError as exc:  # out of memory, a lost object...
        raise ClusterError(f"{failure}: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}") from None


def _run_job(job: Callable[[], Any]) -> Any:
    """What a Ray task runs: the job itself."""
    return job()


def uses_ray(ray_address: str | None | bool, *, workers: int = 1, gpus_per_task: float = 0) -> bool:
    """Whether ``--ray [ADDRESS]``, ``--workers N`` and ``--gpus-per-training`` run trainings on Ray."""
    return not (ray_address in (None, False) and workers <= 1 and not gpus_per_task)


def make_executor(ray_address: str | None | bool, *, workers: int = 1, cpus_per_task: int = 1,
                  gpus_per_task: float = 0):
    """The executor of ``--ray [ADDRESS]``, ``--workers N`` and ``--gpus-per-training``: serial without ``--ray``,
    with one worker and no GPU; Ray otherwise (``ray_address`` True or ``"local"``: a local Ray; else the
    cluster's address)."""
    if not math.isfinite(float(gpus_per_task)) or gpus_per_task < 0:
        raise ClusterError(f"--gpus-per-training must be a finite number of at least 0, got {gpus_per_task!r}")
    if not uses_ray(ray_address, workers=workers, gpus_per_task=gpus_per_task):
        return SerialExecutor()
    address = None if ray_address in (None, False, True, "local", "") else str(ray_address)
    return RayExecutor(address, workers=workers, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task)
