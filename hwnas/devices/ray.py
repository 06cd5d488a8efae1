"""A node of a Ray cluster as a device: it advertises ``device:<name>`` and no CPUs, and measures there.

On the device::

    ray start --address HEAD:6379 --num-cpus 0 --resources '{"device:pi4": 1}'

Measurement tasks ask for that resource (one at a time: it counts 1) and no CPU, so a measurement never shares
its machine with a training (:class:`hwnas.cluster.RayExecutor` refuses a device node that offers CPUs).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from hwnas.cluster import DEVICE_RESOURCE, TASK_RETRIES, ClusterError, RayExecutor, ray_get, wait_one
from hwnas.devices.base import measure_command, profile_name
from hwnas.profiling.measure import DEFAULT_PROTOCOL, Conditions, LatencyStats, Protocol
from hwnas.runtimes import ModelFiles


def node_advertising(executor, name: str) -> bool:
    """Whether a live node of ``executor``'s cluster advertises ``device:<name>`` (never without Ray)."""
    ray = getattr(executor, "ray", None)
    if ray is None:
        return False
    resource = DEVICE_RESOURCE.format(name)
    return any(n.get("Alive", True) and resource in n.get("Resources", {}) for n in ray.nodes())


class RayNodeDevice:
    """Latency measurements on the cluster node of one device, one at a time.

    Args:
        executor: A :class:`~hwnas.cluster.RayExecutor` (initialised).
        name: The device (``device:<name>`` resource).
        owns_executor: Whether :meth:`close` closes the executor (opened for this device alone).
    """

    where = "its Ray node"
    measurable = True
    reason = ""

    def __init__(self, executor: RayExecutor, name: str, *, owns_executor: bool = False) -> None:
        self.executor = executor
        self.ray = executor.ray
        self.name = name
        self.owns_executor = owns_executor
        # each remote function is registered once, not at every measurement
        options = dict(num_cpus=0, resources={DEVICE_RESOURCE.format(name): 1}, max_retries=TASK_RETRIES)
        functions = (_node_fingerprint, _measure_on_node, _measure_file_on_node)
        self._fingerprint, self._measure, self._measure_file = (self.ray.remote(fn).options(**options)
                                                                for fn in functions)

    @classmethod
    def connect(cls, ray_address: str, name: str) -> "RayNodeDevice":
        """The node advertising ``device:<name>`` of the cluster at ``ray_address`` (``--ray``).

        Raises:
            ClusterError: no such node (the message gives the ``ray start`` line that makes one).
        """
        from hwnas.cluster import make_executor

        executor = make_executor(ray_address, workers=1)
        try:
            found = node_advertising(executor, name)
        except BaseException:
            executor.close()
            raise
        if not found:
            executor.close()
            resource = DEVICE_RESOURCE.format(name)
            raise ClusterError(f"no node of the Ray cluster advertises {resource}: on the device run 'ray start "
                               f"--address HEAD:PORT --num-cpus 0 --resources '{{\"{resource}\": 1}}''")
        return cls(executor, name, owns_executor=True)

    def fingerprint(self, conditions: Conditions) -> dict[str, Any]:
        return self._get(self._fingerprint.remote(profile_name(self.name, conditions.runtime), conditions))

    def measure_arch(self, space, arch, input_shape: Sequence[int], num_classes: int, *, conditions: Conditions,
                     space_options: Mapping[str, Any] | None = None, protocol: Protocol = DEFAULT_PROTOCOL,
                     seed: int = 0) -> dict[str, Any]:
        string = arch if isinstance(arch, str) else arch.string
        kwargs = dict(conditions=conditions, space_options=space_options, protocol=protocol, seed=seed)
        return self._get(self._measure.remote(space, string, tuple(input_shape), int(num_classes), kwargs))

    def measure_file(self, model: bytes | ModelFiles, input_shape: Sequence[int], conditions: Conditions,
                     **protocol: Any) -> LatencyStats:
        return self._get(self._measure_file.remote(model, tuple(input_shape), conditions, protocol))

    def command(self, model_name: str, conditions: Conditions) -> str:
        return measure_command(model_name, conditions)

    def close(self) -> None:
        if self.owns_executor:
            self.executor.close()

    def _get(self, ref):
        wait_one(self.ray, [ref], self.executor.timeout_s, self._check_node)
        return ray_get(self.ray, ref, failure=f"the {self.name} node could not measure")

    def _check_node(self) -> None:
        """Refuses to wait longer for a measurement when no live node advertises the device any more."""
        if not node_advertising(self.executor, self.name):
            raise ClusterError(f"a measurement has waited --ray-timeout {self.executor.timeout_s:g}s and no live "
                               f"node of the Ray cluster advertises {DEVICE_RESOURCE.format(self.name)} any more")


def _node_fingerprint(profile: str, conditions: Conditions) -> dict[str, Any]:
    from hwnas.devices.local import checked_fingerprint

    return checked_fingerprint(profile, conditions)


def _measure_on_node(space, arch: str, input_shape, num_classes: int, kwargs: dict) -> dict[str, Any]:
    import ray

    from hwnas.profiling.measure import profile_arch

    record = profile_arch(space, space.parse(arch), input_shape, num_classes, **kwargs)
    return {**record, "ray_node": ray.get_runtime_context().get_node_id()}  # which node measured it


def _measure_file_on_node(model, input_shape, conditions: Conditions, protocol: dict) -> LatencyStats:
    from hwnas.devices.local import measure_file

    return measure_file(model, input_shape, conditions, **protocol)
