"""Weight sharing: one supernet for the whole ``mobilenet`` space, its training and its sub-network estimates.

* :mod:`~hwnas.supernet.elastic` — the elastic network and the extraction of a sub-network's weights;
* :mod:`~hwnas.supernet.training` — sandwich (BigNAS) or uniform (SPOS) training, resumable per epoch;
* :mod:`~hwnas.supernet.folder` — the self-describing folder (``meta.json``, checkpoint, weights, checksum);
* :mod:`~hwnas.supernet.estimate` — BN-recalibrated estimates as an evaluator of the evaluation store.
"""

from hwnas.supernet.elastic import MobileNetSupernet, SupernetError
from hwnas.supernet.estimate import SupernetEstimator
from hwnas.supernet.folder import SupernetFolder, SupernetSettings
from hwnas.supernet.training import train_supernet

__all__ = ["MobileNetSupernet", "SupernetError", "SupernetEstimator", "SupernetFolder", "SupernetSettings",
           "train_supernet"]
