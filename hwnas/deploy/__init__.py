"""Deployment: the final model of a search, exported, verified, re-measured and evaluated as a file.

The doors in:

- :func:`resolve_target` -- what to export (a run's best, or an explicit architecture);
- :func:`export_target` -- final training, checked export, re-measurement, optional int8, atomic write;
- :func:`evaluate_file` -- accuracy of an ONNX file over the test split it was exported with.
"""

from hwnas.deploy.evaluate import Evaluation, accuracy_of, evaluate_file, read_model
from hwnas.deploy.pipeline import ExportSummary, export_target
from hwnas.deploy.target import EPOCH_FACTOR, DeployError, ExportTarget, final_recipe, resolve_target

__all__ = ["EPOCH_FACTOR", "DeployError", "Evaluation", "ExportSummary", "ExportTarget", "accuracy_of",
           "evaluate_file", "export_target", "final_recipe", "read_model", "resolve_target"]
