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

import contextlib
import logging
import math
import os
import shutil
import socket
import tempfile
import threading
from typing import Any, Callable, Iterator, Sequence

from hwnas.errors import HwnasError

logger = logging.getLogger(__name__)

#: Ray retries a task whose worker died this many times (a training that raises is not retried: that is a bug,
#: or bad data, and the same seed raises again).
TASK_RETRIES = 3
DEVICE_RESOURCE = "device:{}"
#: How long any wait on Ray may last (``--ray-timeout``): reaching the cluster, a task no live node can place.
DEFAULT_RAY_TIMEOUT_S = 30.0
_timeout_s = [DEFAULT_RAY_TIMEOUT_S]


def ray_timeout_s() -> float:
    """The time limit of every wait on Ray in this process (``--ray-timeout``, :func:`ray_timeout`)."""
    return _timeout_s[0]


@contextlib.contextmanager
def ray_timeout(seconds: float | None) -> Iterator[None]:
    """Sets :func:`ray_timeout_s` inside the block (None: unchanged); a non-positive or non-finite limit is refused
    in one line."""
    if seconds is None:
        yield
        return
    if not math.isfinite(float(seconds)) or float(seconds) <= 0:
        raise ClusterError(f"--ray-timeout must be a positive duration, got {seconds!r}")
    before, _timeout_s[0] = _timeout_s[0], float(seconds)
    try:
        yield
    finally:
        _timeout_s[0] = before


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
                 gpus_per_task: float = 0, timeout_s: float | None = None) -> None:
        self.workers = int(workers)
        self.cpus_per_task = int(cpus_per_task)
        self.gpus_per_task = float(gpus_per_task)
        self.timeout_s = ray_timeout_s() if timeout_s is None else float(timeout_s)
        self._temp_dir: str | None = None
        self._environ: dict[str, str | None] = {}
        if address is not None:
            _check_reachable(address, self.timeout_s)
        loopback = address is not None and _is_loopback(address)
        given = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
        if loopback and given is None:
            # Ray swaps a loopback address for the machine's other address unless told not to (read once, when
            # Ray is imported): a head started on 127.0.0.1 is then out of reach
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        try:
            self.ray = ray = import_ray()
        finally:
            if loopback and given is None:  # read by now; this process's children do not inherit it
                os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        self._started = not ray.is_initialized()
        if self._started:
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                          logging_level=logging.WARNING, configure_logging=False)
            if address is None:
                # "local", not None: a RAY_ADDRESS in the environment must not turn it into another cluster
                kwargs.update(address="local", num_cpus=max(self.workers * self.cpus_per_task, 1),
                              _node_ip_address="127.0.0.1", _temp_dir=self._local_temp_dir())
                self._local_auth()
            else:
                kwargs.update(address=address)
                self._cluster_auth()
            try:
                if address is None:  # started here: nothing external to wait for
                    ray.init(**kwargs)
                else:
                    _within(self.timeout_s, lambda: ray.init(**kwargs),
                            f"cannot reach the Ray cluster at {address} within --ray-timeout {self.timeout_s:g}s"
                            f"{_auth_hint()}")
            except ClusterError:
                self._clean()
                raise
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"cannot reach the Ray cluster at {address}" if address else "cannot start a local Ray"
                message = f"{where}: {_first_line(exc)}{_auth_hint() if address else ''}"
                self._clean()
                raise ClusterError(message) from None
        try:
            self._check_device_nodes()
            self._check_gpus()
        except BaseException:
            self.close()
            raise
        self._task = ray.remote(_run_job).options(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
                                                  max_retries=TASK_RETRIES, retry_exceptions=False)

    def _local_temp_dir(self) -> str:
        """A short folder of its own for a local Ray (its socket paths stay under the 107 bytes AF_UNIX allows
        wherever the run folder is), removed by :meth:`close`."""
        root = "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else tempfile.gettempdir()
        uid = os.getuid() if hasattr(os, "getuid") else 0
        self._temp_dir = tempfile.mkdtemp(prefix=f"hwnas-ray-{uid}-", dir=root)
        return self._temp_dir

    def _local_auth(self) -> None:
        """A local Ray authenticates with a token of its own, kept in this process's environment (which Ray's
        processes inherit), never written to ``~/.ray/auth_token`` as Ray does by default; where this Ray
        cannot take the token so, token authentication is off (the cluster listens on 127.0.0.1 only)."""
        if os.environ.get("RAY_AUTH_MODE") is not None:
            return  # the user's own choice
        import secrets

        token = secrets.token_hex(32)
        for name, value in (("RAY_AUTH_MODE", "token"), ("RAY_AUTH_TOKEN", token)):
            self._environ[name] = os.environ.get(name)
            os.environ[name] = value
        if not _reread_ray_settings():
            os.environ["RAY_AUTH_MODE"] = "disabled"
            os.environ.pop("RAY_AUTH_TOKEN", None)

    def _cluster_auth(self) -> None:
        """A token given in ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` is sent to the cluster: Ray itself sends
        none to an explicit address unless ``RAY_AUTH_MODE=token`` is set too. ``~/.ray/auth_token`` alone is not
        (it may be another cluster's)."""
        if os.environ.get("RAY_AUTH_MODE") is not None:
            return
        if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
            self._environ["RAY_AUTH_MODE"] = None
            os.environ["RAY_AUTH_MODE"] = "token"
            _reread_ray_settings()

    def _clean(self) -> None:
        for name, value in self._environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self._environ:
            self._environ = {}
            _reread_ray_settings()  # a later cluster may use no token
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

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
            total = float(self.ray.cluster_resources().get("GPU", 0))
            raise ClusterError(f"--gpus-per-training {self.gpus_per_task:g}: no node of the Ray cluster has that "
                               f"many GPUs (the cluster has {total:g}, the most on one node {largest:g}); a "
                               f"training would wait forever")

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
                done = wait_one(ray, list(running), self.timeout_s, self._check_placeable)
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

    def _check_placeable(self) -> None:
        """Refuses to wait longer for a training no live node can take (the node that could has gone)."""
        for node in self.ray.nodes():
            resources = node.get("Resources", {}) if node.get("Alive", True) else {}
            if (resources.get("CPU", 0) >= self.cpus_per_task
                    and resources.get("GPU", 0) >= self.gpus_per_task):
                return
        gpus = f" and {self.gpus_per_task:g} GPUs" if self.gpus_per_task else ""
        raise ClusterError(f"a training has waited --ray-timeout {self.timeout_s:g}s for {self.cpus_per_task} "
                           f"CPUs{gpus}, which no live node of the Ray cluster has")

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
        if self._started:
            self._clean()


def _reread_ray_settings() -> bool:
    """Makes Ray read its ``RAY_AUTH_*`` settings again (it read them when imported), as its own token set-up
    does after changing them; False where this Ray version cannot."""
    import importlib

    try:
        raylet = importlib.import_module("ray._raylet")
        raylet.Config.initialize("")
        raylet.AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):
        return False
    return True


def wait_one(ray, refs: list, timeout_s: float, placeable: Callable[[], None]) -> list:
    """The refs of ``refs`` that are done, at least one: waits ``timeout_s`` at a time, asking ``placeable``
    (which raises a :class:`ClusterError` when no live node can run them) between waits."""
    while True:
        done, _ = ray.wait(refs, num_returns=1, timeout=timeout_s)
        if done:
            return done
        placeable()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _auth_hint() -> str:
    """What to set when the cluster may have refused this process for want of its auth token."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return " (is RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH the head's token? 'ray get-auth-token' on the head)"
    return (" (a head with token authentication needs its token here: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH; "
            "'ray get-auth-token' on the head prints it)")


def _split_address(address: str) -> tuple[str, int] | None:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _is_loopback(address: str) -> bool:
    parts = _split_address(address)
    return parts is not None and (parts[0] == "localhost" or parts[0].startswith("127.") or parts[0] == "::1")


def _check_reachable(address: str, timeout_s: float) -> None:
    """Refuses in one line, within ``timeout_s``, a ``HOST:PORT`` nothing answers at (Ray itself retries for
    minutes); ``auto`` and other forms are left to Ray."""
    parts = _split_address(address)
    if parts is None:
        return
    host, port = parts
    if not 0 < port < 65536:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: port {port} is out of range")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except socket.timeout:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: no answer within --ray-timeout "
                           f"{timeout_s:g}s") from None
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def _not_main_thread_note(record: logging.LogRecord) -> bool:
    """Drops Ray's note that ``ray.init`` outside the main thread sets no SIGTERM handler (:func:`_within`)."""
    return "SIGTERM handler is not set" not in record.getMessage()


def _within(timeout_s: float, call: Callable[[], Any], message: str) -> Any:
    """``call()``'s result, or :class:`ClusterError` ``message`` when it has not returned within ``timeout_s``
    (it goes on in a daemon thread that the process's exit ends)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    logging.getLogger("ray._private.worker").addFilter(_not_main_thread_note)
    thread = threading.Thread(target=target, name="hwnas-ray-connect", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise ClusterError(message)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


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
                  gpus_per_task: float = 0, timeout_s: float | None = None):
    """The executor of ``--ray [ADDRESS]``, ``--workers N`` and ``--gpus-per-training``: serial without ``--ray``,
    with one worker and no GPU; Ray otherwise (``ray_address`` True or ``"local"``: a local Ray; else the
    cluster's address)."""
    if not math.isfinite(float(gpus_per_task)) or gpus_per_task < 0:
        raise ClusterError(f"--gpus-per-training must be a finite number of at least 0, got {gpus_per_task!r}")
    if not uses_ray(ray_address, workers=workers, gpus_per_task=gpus_per_task):
        return SerialExecutor()
    address = None if ray_address in (None, False, True, "local", "") else str(ray_address)
    return RayExecutor(address, workers=workers, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task,
                       timeout_s=timeout_s)
