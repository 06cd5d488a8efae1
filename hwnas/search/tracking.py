"""An optional MLflow hook: one MLflow run per search, one nested run per trained candidate.

:class:`MlflowCallback` is a :class:`~hwnas.search.events.SearchCallback` (``hwnas search --mlflow [URI]``, or
``hwnas.start_search(config, callbacks=[hwnas.MlflowCallback()])``). It needs the ``mlflow`` extra
(``pip install 'hwnas[mlflow]'``: ``mlflow-skinny`` with SQLAlchemy and Alembic for a local SQLite store), and
imports MLflow only when it is made.

What it logs:

- the search's *parent* run (named after the run folder): the :class:`~hwnas.search.config.RunConfig` as
  params (flattened: ``recipe.epochs``), the best verified accuracy and latency so far as metrics at each
  training, and at the end the best's accuracy, latency and test accuracy, trainings and measurements used,
  the stop reason (tag ``stop_reason``) and the run's files (``result.json``, ``verified.csv``, ``history.csv``,
  ``config.json``, ``pareto.png``) and its ``hwnas report`` (``report.html``, ~2 s to draw) as artifacts;
- one *nested* run per trained candidate: params are the architecture's decisions (its space's
  ``label -> choice``, labels made MLflow-safe: ``1<-0`` becomes ``1_-0``) and ``arch`` (its string); metrics are
  ``val_accuracy``, ``latency_ms``, ``round`` and, where the search predicted them, ``predicted_accuracy`` and
  ``predicted_latency_ms``; a finalist's extra-seed trainings add ``final_accuracy`` (step: the seed) and, at the
  end, ``final_accuracy_mean`` and ``final_accuracy_std``.

Resume: the parent run's id is kept in the run folder (``mlflow.json``); a resumed search logs to the same
parent run (in the same store unless another URI is given) and never logs a trained candidate twice: the nested
runs already there are read back by their ``hwnas.arch`` tag, and trainings of earlier sessions that were not
logged (a session without ``--mlflow``, or one killed between a training and its log) are logged when the
session starts. A failure of the tracking server in the middle of a search is a warning, never the end of the
search: the next resume logs what is missing. A search stopped early (Ctrl-C, an error) marks its parent run
``KILLED`` or ``FAILED`` (:meth:`MlflowCallback.close`, which ``hwnas search`` calls); a resume sets it running
again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json
from hwnas.search.events import FinalistTrained, SearchCallback, SearchFinished, SearchStarted, Trained
from hwnas.search.result import SearchResult
from hwnas.search.state import Verified
from hwnas.spaces.base import SearchSpace

logger = logging.getLogger(__name__)

#: The run folder's record of its MLflow run.
MLFLOW_FILE = "mlflow.json"
#: Experiment of the runs unless one is named (or ``MLFLOW_EXPERIMENT_NAME`` is set).
DEFAULT_EXPERIMENT = "hwnas"
#: The run folder's files logged as the parent run's artifacts at the end (those that exist).
ARTIFACTS = ("result.json", "verified.csv", "history.csv", "config.json", "pareto.png")
INSTALL_HINT = "MLflow tracking needs MLflow, which is not installed: pip install 'hwnas[mlflow]'"
#: MLflow's limits: params per batch, and characters of a param's value.
_BATCH, _PARAM_CHARS = 100, 6000
_UNSAFE = re.compile(r"[^\w.\- /:]")


def import_mlflow():
    """The ``mlflow`` module; :class:`HwnasError` with the install line where it is missing."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient  # noqa: F401
    except ImportError:
        raise HwnasError(INSTALL_HINT) from None
    return mlflow


def safe_key(label: str) -> str:
    """``label`` as an MLflow param or metric key (letters, digits, ``_ - . / :`` and spaces)."""
    return _UNSAFE.sub("_", str(label))


def flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A JSON document as MLflow params: nested objects as dotted keys, lists as JSON, None left out."""
    flat: dict[str, str] = {}
    for key, value in document.items():
        name = safe_key(f"{prefix}{key}")
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        elif value is not None:
            text = json.dumps(value) if isinstance(value, (list, tuple, Mapping)) else str(value)
            flat[name] = text[:_PARAM_CHARS]
    return flat


def decisions(space, arch: str) -> dict[str, str]:
    """The architecture's decisions as params (safe keys); its string alone if ``space`` cannot parse it."""
    try:
        choices = space.parse(arch).to_dict()
    except HwnasError as exc:  # a record of another version of the space: still logged, by its string
        logger.warning("MLflow: %s is not an architecture of %s (%s): logged by its string only", arch,
                       getattr(space, "name", space), exc)
        choices = {}
    params = {safe_key(label): str(value)[:_PARAM_CHARS] for label, value in choices.items()}
    params["arch"] = arch[:_PARAM_CHARS]
    return params


def resolve_uri(uri: str) -> str:
    """``uri`` with a relative local path made absolute (a resume from another folder finds the same store)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    if uri.startswith("file:") and not uri.startswith("file:/"):
        return Path(uri[len("file:"):]).resolve().as_uri()
    if "://" not in uri and not uri.startswith(("databricks", "uc:")):
        return Path(uri).resolve().as_uri()
    return uri


class MlflowCallback(SearchCallback):
    """Logs a search to MLflow (this module's docstring says what).

    Args:
        tracking_uri: The tracking store: ``sqlite:///mlflow.db``, ``http://host:5000``, ... [default:
            MLflow's own, ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the current folder; a
            resume: the store its parent run is in].
        experiment: The experiment [default: ``$MLFLOW_EXPERIMENT_NAME``, else ``hwnas``]; created if needed.
        run_name: The parent run's name [default: the run folder's name].
        artifacts: Log the run folder's result files to the parent run at the end.
        report: Log the run's HTML report too (``hwnas report``; with ``artifacts``).
        echo: Where the line naming the MLflow run goes when a search starts [default: this module's logger,
            at INFO]; the command line prints it with its progress.

    Raises:
        HwnasError: MLflow is not installed (the line says how to install it), or the store cannot be opened.
    """

    def __init__(self, tracking_uri: str | None = None, *, experiment: str | None = None,
                 run_name: str | None = None, artifacts: bool = True, report: bool = True,
                 echo: Callable[[str], None] | None = None) -> None:
        self.mlflow = import_mlflow()
        self.explicit_uri = tracking_uri or None
        self.experiment_name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        self.run_name = run_name
        self.artifacts = artifacts
        self.report = report
        self.echo = echo
        self.run_id: str | None = None
        self.trials: dict[str, str] = {}  # arch string -> nested run id
        self.broken = False
        self.finished = False
        self.space: SearchSpace | None = None
        self.run_dir: Path | None = None
        self._connect(resolve_uri(tracking_uri or self.mlflow.get_tracking_uri()))

    # -- connection ------------------------------------------------------------------------------------------
    def _connect(self, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is not None and found.lifecycle_stage == "deleted":
                raise HwnasError(f"experiment {self.experiment_name!r} is deleted in {uri}: restore it, or log to "
                                 f"another (MLFLOW_EXPERIMENT_NAME)")
            self.experiment_id = found.experiment_id if found is not None else \
                self.client.create_experiment(self.experiment_name)
        except HwnasError:
            raise
        except Exception as exc:
            raise HwnasError(f"MLflow store {uri} cannot be used: {_first_line(exc)}") from None
        self.tracking_uri = uri

    def _guard(self, what: str, action: Callable[[], None]) -> None:
        """Runs a logging step; a failure stops the logging (a warning), never the search."""
        if self.broken or self.run_id is None:
            return
        try:
            action()
        except Exception as exc:
            self.broken = True
            logger.warning("MLflow logging stopped while %s (%s); the search goes on, and a resume with --mlflow "
                           "logs what is missing", what, _first_line(exc))

    # -- events ----------------------------------------------------------------------------------------------
    @property
    def _parent(self) -> str:
        """The search's MLflow run (set when the search starts)."""
        if self.run_id is None:
            raise HwnasError("MlflowCallback: no search has started")
        return self.run_id

    @property
    def _folder(self) -> Path:
        """The search's run folder (set when the search starts)."""
        if self.run_dir is None:
            raise HwnasError("MlflowCallback: no search has started")
        return self.run_dir

    def on_search_start(self, event: SearchStarted) -> None:
        if event.run_dir is None or event.config is None:
            raise HwnasError("MlflowCallback needs a search run by hwnas (its start names the run folder)")
        self.run_dir = Path(event.run_dir)
        self.space = event.config.create_space()
        # one callback may log several searches
        self.run_id, self.trials, self.broken, self.finished = None, {}, False, False
        try:
            self._open_parent(event)
        except HwnasError:
            raise
        except Exception as exc:
            raise HwnasError(f"MLflow store {self.tracking_uri}: {_first_line(exc)}") from None
        (self.echo or logger.info)(f"MLflow: logging to run {self.run_id} of experiment {self.experiment_name!r} "
                                   f"in {self.tracking_uri}")
        late = [v for v in event.verified if v.arch not in self.trials]
        if late:
            def catch_up() -> None:
                for record in late:
                    self._log_trial(record)

            self._guard("logging earlier trainings", catch_up)

    def on_trained(self, event: Trained) -> None:
        def log() -> None:
            self._log_trial(event.record)
            if event.best is not None:
                self._metrics(self._parent, {"best_accuracy": event.best.accuracy,
                                            "best_latency_ms": event.best.latency_ms}, step=len(self.trials))

        self._guard(f"logging {event.record.arch}", log)

    def on_finalist_trained(self, event: FinalistTrained) -> None:
        child = self.trials.get(event.arch)
        if child is not None:
            self._guard(f"logging finalist {event.arch}",
                        lambda: self._metrics(child, {"final_accuracy": event.accuracy}, step=event.replica))

    def on_search_end(self, event: SearchFinished) -> None:
        self._guard("logging the result", lambda: self._log_result(event.result))

    # -- parent run ------------------------------------------------------------------------------------------
    def _open_parent(self, event: SearchStarted) -> None:
        config = event.config
        assert config is not None  # checked by on_search_start
        record_file = self._folder / MLFLOW_FILE
        stored = _read_record(record_file)
        if stored and (self.explicit_uri is None or resolve_uri(self.explicit_uri) == stored.get("tracking_uri")):
            if stored.get("tracking_uri") and stored["tracking_uri"] != self.tracking_uri:
                self._connect(stored["tracking_uri"])
            run = self._existing_run(stored.get("run_id"))
            if run is not None:
                self.run_id, self.experiment_id = run.info.run_id, run.info.experiment_id
                self.experiment_name = self.client.get_experiment(self.experiment_id).name
                self.client.update_run(self.run_id, status="RUNNING")
                self._read_trials()
                self._log_config(config, dict(run.data.params))
                return
            logger.warning("MLflow: the run %s of %s is not in %s: a new run is started", stored.get("run_id"),
                           record_file, self.tracking_uri)
        run = self.client.create_run(self.experiment_id, run_name=self.run_name or self._folder.name,
                                     tags={"hwnas.run_dir": str(self._folder.resolve()),
                                           "hwnas.space": config.space, "hwnas.device": config.device})
        self.run_id = run.info.run_id
        atomic_write_json(record_file, {"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id,
                                        "experiment": self.experiment_name, "run_id": self.run_id})
        self._log_config(config, {})

    def _existing_run(self, run_id: str | None):
        if not run_id:
            return None
        try:
            run = self.client.get_run(run_id)
        except Exception:  # MLflow raises its own exception for an unknown id
            return None
        return None if run.info.lifecycle_stage == "deleted" else run

    def _read_trials(self) -> None:
        """The nested runs logged by earlier sessions (``arch`` -> run id)."""
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], max_results=1000, page_token=token,
                                           filter_string=f"tags.mlflow.parentRunId = '{self.run_id}'")
            for run in page:
                arch = run.data.tags.get("hwnas.arch")
                if arch:
                    self.trials.setdefault(arch, run.info.run_id)
            token = page.token
            if not token:
                return

    def _log_config(self, config, existing: Mapping[str, str]) -> None:
        """The configuration as params; a value a resume changed (a larger budget) goes to the tag
        ``config.<key>``: MLflow params are written once."""
        params = flatten(config.to_json())
        new = {k: v for k, v in params.items() if k not in existing}
        changed = {f"config.{k}": v for k, v in params.items() if k in existing and existing[k] != v}
        self._batch(self._parent, params=new, tags=changed)

    # -- nested runs -----------------------------------------------------------------------------------------
    def _log_trial(self, record: Verified) -> None:
        if record.arch in self.trials:
            return
        from hwnas.arch import arch_id

        assert self.space is not None  # set when the search starts
        tags = {"mlflow.parentRunId": self._parent, "hwnas.arch": record.arch[:_PARAM_CHARS],
                "hwnas.arch_id": arch_id(self.space.name, record.arch), "hwnas.round": str(record.round),
                "hwnas.latency_measured": str(record.latency_measured)}
        child = self.client.create_run(self.experiment_id, run_name=f"trial-{len(self.trials):03d}", tags=tags)
        child_id = child.info.run_id
        self._batch(child_id, params=decisions(self.space, record.arch))
        self._metrics(child_id, {"val_accuracy": record.accuracy, "latency_ms": record.latency_ms,
                                 "round": record.round, "predicted_accuracy": record.predicted_accuracy,
                                 "predicted_latency_ms": record.predicted_latency_ms,
                                 "test_accuracy": record.test_accuracy, "params": record.params, "macs": record.macs,
                                 "train_seconds": record.train_seconds})
        self.client.set_terminated(child_id, "FINISHED")
        self.trials[record.arch] = child_id

    # -- the end ---------------------------------------------------------------------------------------------
    def _log_result(self, result: SearchResult) -> None:
        best = result.best
        step = int(result.trainings_used or len(self.trials))
        self._metrics(self._parent, {
            "best_accuracy": None if best is None else best.accuracy,
            "best_latency_ms": None if best is None else best.latency_ms,
            "best_mean_accuracy": None if best is None else best.mean_accuracy, "test_accuracy": result.test_accuracy,
            "trainings_used": result.trainings_used, "measurements_used": result.measurements_used,
            "rounds": result.rounds, "elapsed_s": result.elapsed_s,
            "feasible": 1.0 if result.feasible else 0.0}, step=step)
        self._batch(self._parent, tags={"stop_reason": result.stop_reason[:5000],
                                       "best_arch": ("" if best is None else best.arch)[:5000]})
        for finalist in result.finalists:
            child = self.trials.get(finalist.arch)
            if child is not None:
                self._metrics(child, {"final_accuracy_mean": finalist.mean, "final_accuracy_std": finalist.std})
        if self.artifacts and self.run_dir is not None:
            for name in ARTIFACTS:
                if (self._folder / name).is_file():
                    self.client.log_artifact(self._parent, str(self._folder / name))
            if self.report:
                self._log_report()
        self.client.set_terminated(self._parent, "FINISHED")
        self.finished = True

    def close(self, status: str = "KILLED") -> None:
        """Marks the search's MLflow run stopped early (``KILLED``: interrupted; ``FAILED``: an error) unless it
        finished; a resume sets it running again. The command line calls it when a search stops early; a Python
        caller whose :func:`hwnas.start_search` raised may too."""
        if self.run_id is None or self.finished:
            return
        try:
            self.client.set_terminated(self._parent, status)
        except Exception as exc:  # the search's own error matters more
            logger.warning("MLflow: run %s could not be marked %s (%s)", self.run_id, status, _first_line(exc))

    def _log_report(self) -> None:
        from hwnas.search.report import write_report

        with tempfile.TemporaryDirectory() as folder:
            try:
                path = write_report([self._folder], Path(folder) / "report.html")
            except Exception as exc:  # a report is a convenience: its failure leaves the rest logged
                logger.warning("MLflow: the run's report could not be drawn (%s); not logged", _first_line(exc))
                return
            self.client.log_artifact(self._parent, str(path))

    # -- MLflow calls ----------------------------------------------------------------------------------------
    def _metrics(self, run_id: str, values: Mapping[str, Any], *, step: int = 0) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(key, float(value), stamp, step) for key, value in values.items()
                   if _finite(value)]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def _batch(self, run_id: str, *, params: Mapping[str, str] | None = None,
               tags: Mapping[str, str] | None = None) -> None:
        from mlflow.entities import Param, RunTag

        items = [Param(k, v) for k, v in (params or {}).items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, params=items[start:start + _BATCH])
        labels = [RunTag(k, v) for k, v in (tags or {}).items()]
        for start in range(0, len(labels), _BATCH):
            self.client.log_batch(run_id, tags=labels[start:start + _BATCH])


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _read_record(path: Path) -> dict | None:
    """``mlflow.json``, or None (missing, or unreadable: a new parent run is started, with a warning)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("MLflow: %s is unreadable (%s): a new run is started", path, exc)
        return None
    return data if isinstance(data, dict) else None

