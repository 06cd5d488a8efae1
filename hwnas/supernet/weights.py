"""A finished supernet's weights, loaded and checked against a task, and one sub-network's share of them.

:func:`load_supernet` is what every reader of a supernet folder does first (the estimator, ``hwnas export
--from-supernet``): check the weights against the checksum, build the elastic network of the folder's space
and load the weights into it. :func:`check_task` refuses a space or data set other than the supernet's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hwnas.arch import Arch
from hwnas.data.base import Dataset
from hwnas.spaces import create_space
from hwnas.spaces.base import SearchSpace
from hwnas.supernet.base import Supernet, SupernetError
from hwnas.supernet.folder import SupernetFolder, load_tensors
from hwnas.supernet.networks import make_supernet
from hwnas.training.store import space_key


@dataclass
class LoadedSupernet:
    """A finished supernet in memory: its folder, metadata, space and elastic network (eval mode)."""

    folder: SupernetFolder
    meta: dict[str, Any]
    space: SearchSpace
    net: Supernet

    @property
    def checksum(self) -> str:
        return str(self.meta["checksum"])

    def check_task(self, space: SearchSpace, dataset: Dataset) -> None:
        """Refuses a space or data set other than the supernet's."""
        if space_key(space) != self.meta["space_key"]:
            raise SupernetError(f"supernet {self.folder.path} covers space {self.meta['space_key']!r}, not "
                                f"{space_key(space)!r}")
        if dataset.key != self.meta["dataset_key"]:
            raise SupernetError(f"supernet {self.folder.path} was trained on data set {self.meta['dataset_key']!r}, "
                                f"not {dataset.key!r}")

    def subnetwork_state(self, arch: Arch) -> dict[str, torch.Tensor]:
        """The state dict of ``arch`` as ``space.build`` makes it, with the supernet's weights (BN statistics
        are the supernet's shared ones); a model of its own, sharing nothing with the supernet."""
        return self.net.extract(self.space.parse(arch.string)).state_dict()


def load_supernet(folder: SupernetFolder | str | Path) -> LoadedSupernet:
    """Loads a finished supernet (its weights checked against the checksum; ``weights_only`` loading)."""
    folder = folder if isinstance(folder, SupernetFolder) else SupernetFolder(folder)
    meta = folder.finished_meta()
    space = create_space(meta["space"], **meta["space_options"])
    net = make_supernet(space, meta["input_shape"], meta["num_classes"])
    state = load_tensors(folder.weights_file, what="supernet weights")
    try:
        net.load_state_dict(state["model"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise SupernetError(f"{folder.weights_file} does not fit its metadata: "
                            f"{str(exc).splitlines()[0][:200]}") from None
    return LoadedSupernet(folder=folder, meta=meta, space=space, net=net.eval())
