"""Weight sharing: one supernet for a whole space (``mobilenet``, ``nb201``), its training and its estimates.

* :mod:`~hwnas.supernet.base` — what every supernet is (space, active sub-network, ``extract``);
* :mod:`~hwnas.supernet.elastic` — the elastic ``mobilenet`` network and the extraction of a sub-network;
* :mod:`~hwnas.supernet.cells` — the one-shot ``nb201`` cell network (every operation on every edge);
* :mod:`~hwnas.supernet.networks` — which supernet covers which space;
* :mod:`~hwnas.supernet.weights` — a finished supernet loaded and checked against a task;
* :mod:`~hwnas.supernet.training` — sandwich (BigNAS) or uniform (SPOS) training, resumable per epoch;
* :mod:`~hwnas.supernet.folder` — the self-describing folder (``meta.json``, checkpoint, weights, checksum);
* :mod:`~hwnas.supernet.estimate` — BN-recalibrated estimates as an evaluator of the evaluation store.
"""

from hwnas.supernet.base import Supernet, SupernetError
from hwnas.supernet.cells import CellSupernet
from hwnas.supernet.elastic import MobileNetSupernet
from hwnas.supernet.estimate import SupernetEstimator
from hwnas.supernet.folder import SupernetFolder, SupernetSettings
from hwnas.supernet.training import train_supernet

__all__ = ["CellSupernet", "MobileNetSupernet", "Supernet", "SupernetError", "SupernetEstimator", "SupernetFolder",
           "SupernetSettings", "train_supernet"]
