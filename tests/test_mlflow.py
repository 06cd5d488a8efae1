"""``hwnas search --mlflow``: a real table-driven search logged to a local SQLite store, read back with MLflow's
client; a resume that logs to the same run without duplicates; and the one line when MLflow is missing."""

from __future__ import annotations

import csv
import json
import shutil
import sys

import pytest

from hwnas.errors import HwnasError
from hwnas.search.tracking import INSTALL_HINT, MLFLOW_FILE, safe_key

# MLflow's SQLite store on SQLAlchemy 2.1 warns about its own query options: not hwnas's to fix
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")


@pytest.fixture
def config(tmp_path):
    """A table-driven nb201 search (fast predictors: the test is about what is logged, not the search)."""
    from hwnas.search.config import RunConfig
    from hwnas.spaces import create_space

    strings = [a.string for a in create_space("nb201").enumerate()]
    acc, lat = tmp_path / "acc.csv", tmp_path / "lat.csv"
    acc.write_text("arch,accuracy\n" + "".join(
        f"{s},{0.5 + 0.07 * s.count('conv_3x3') + 0.03 * s.count('conv_1x1')}\n" for s in strings))
    lat.write_text("arch,latency_ms\n" + "".join(
        f"{s},{0.2 + 0.12 * s.count('conv_3x3') + 0.04 * s.count('conv_1x1')}\n" for s in strings))
    return RunConfig(budget_ms=0.7, space="nb201", accuracy_table=str(acc), latency_table=str(lat),
                     controller="random", max_trainings=3, initial_trainings=3, candidates_per_round=2,
                     archs_per_round=60, profile_samples=20, profiles_dir=str(tmp_path / "profiles"),
                     store=str(tmp_path / "evals.sqlite"),
                     predictor_options={"ensemble_size": 1, "n_estimators": 20})


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An empty SQLite tracking store, made once: MLflow's schema migrations take seconds; a copy is instant."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "empty.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(empty_store, tmp_path, monkeypatch):
    """A local SQLite tracking store under ``tmp_path`` whose experiment keeps its artifacts there too."""
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.chdir(tmp_path)  # MLflow's default store and artifacts, if anything used them, land here
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_experiment("hwnas", artifact_location=(tmp_path / "artifacts").as_uri())
    return uri, client


def _runs(client):
    experiment = client.get_experiment_by_name("hwnas")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def _check_against_run_folder(client, run, space):
    """One parent; one nested run per row of verified.csv, with its decisions, accuracy and latency; the
    parent's config params, result metrics, stop reason and artifacts."""
    parents, children = _runs(client)
    assert len(parents) == 1
    parent = parents[0]
    assert json.loads((run / MLFLOW_FILE).read_text())["run_id"] == parent.info.run_id
    rows = list(csv.DictReader((run / "verified.csv").open()))
    assert len(children) == len(rows)
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    by_arch = {c.data.tags["hwnas.arch"]: c for c in children}
    assert set(by_arch) == {row["arch"] for row in rows}  # each trained candidate once
    for row in rows:
        child = by_arch[row["arch"]]
        expected = {safe_key(k): str(v) for k, v in space.parse(row["arch"]).to_dict().items()}
        assert child.data.params == {**expected, "arch": row["arch"]}
        assert child.data.metrics["val_accuracy"] == pytest.approx(float(row["accuracy"]))
        assert child.data.metrics["latency_ms"] == pytest.approx(float(row["latency_ms"]))
        assert child.data.metrics["round"] == int(row["round"])
        if row["predicted_accuracy"]:
            assert child.data.metrics["predicted_accuracy"] == pytest.approx(float(row["predicted_accuracy"]))
        assert child.info.status == "FINISHED"
    result = json.loads((run / "result.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert parent.info.status == "FINISHED" and parent.info.run_name == run.name
    assert parent.data.params["space"] == "nb201" and parent.data.params["budget_ms"] == str(config["budget_ms"])
    assert parent.data.params["recipe.epochs"] == str(config["recipe"]["epochs"])
    assert parent.data.metrics["best_accuracy"] == pytest.approx(result["best"]["accuracy"])
    assert parent.data.metrics["best_latency_ms"] == pytest.approx(result["best"]["latency_ms"])
    assert parent.data.metrics["trainings_used"] == result["trainings_used"]
    assert parent.data.tags["stop_reason"] == result["stop_reason"]
    assert parent.data.tags["best_arch"] == result["best"]["arch"]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"result.json", "verified.csv", "config.json", "report.html"} <= logged
    return parent, children


def test_a_search_logs_one_run_and_a_nested_run_per_training_and_a_resume_continues_it(cli, config, store,
                                                                                          tmp_path, monkeypatch,
                                                                                          caplog):
    import hwnas
    from hwnas.search.tracking import MlflowCallback
    from hwnas.spaces import create_space

    uri, client = store
    run = tmp_path / "run"
    # a first session without MLflow: its trainings are logged when a tracked session starts
    hwnas.start_search(config, run)
    assert not (run / MLFLOW_FILE).exists() and _runs(client) == ([], [])

    # a tracked session whose store fails at its fifth training: a warning, and the search goes on
    log_trial = MlflowCallback._log_trial

    def failing(self, record):
        if len(self.trials) == 4:
            raise OSError("disk full")
        log_trial(self, record)

    monkeypatch.setattr(MlflowCallback, "_log_trial", failing)
    result = hwnas.resume_search(run, max_trainings=5, callbacks=[hwnas.MlflowCallback(uri)])
    assert result.trainings_used == 5
    assert "MLflow logging stopped while logging" in caplog.text and "disk full" in caplog.text
    parents, children = _runs(client)
    assert len(parents) == 1 and len(children) == 4 and parents[0].info.status == "RUNNING"
    monkeypatch.setattr(MlflowCallback, "_log_trial", log_trial)

    # --mlflow without a URI on a resume: the store and parent run the run folder recorded; the training the
    # failed session did not log is logged now, none twice; Ctrl-C after the sixth marks the MLflow run KILLED
    on_trained = MlflowCallback.on_trained

    def interrupted(self, event):
        on_trained(self, event)
        raise KeyboardInterrupt

    monkeypatch.setattr(MlflowCallback, "on_trained", interrupted)
    stopped = cli("search", "--mlflow", "--resume", run, "--max-trainings", "6")
    assert stopped.exit_code == 130, stopped.stderr
    assert client.get_run(parents[0].info.run_id).info.status == "KILLED"
    monkeypatch.setattr(MlflowCallback, "on_trained", on_trained)
    again = cli("search", "--mlflow", "--resume", run)
    assert again.exit_code == 0, again.stderr
    assert f"MLflow: logging to run {parents[0].info.run_id} of experiment 'hwnas' in {uri}" in again.output
    parent, children = _check_against_run_folder(client, run, create_space("nb201"))
    assert parent.info.run_id == parents[0].info.run_id and len(children) == 6
    assert parent.data.params["max_trainings"] == "5" and parent.data.tags["config.max_trainings"] == "6"
    history = client.get_metric_history(parent.info.run_id, "best_accuracy")
    assert max(m.step for m in history) == 6


def test_without_mlflow_the_option_is_one_install_line_and_no_run_folder(cli, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    result = cli("search", "--latency-budget", "1ms", "--mlflow", "--run-dir", tmp_path / "run",
                 "--profiles-dir", tmp_path / "profiles")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"Error: {INSTALL_HINT}"]
    assert "pip install 'hwnas[mlflow]'" in INSTALL_HINT
    assert not (tmp_path / "run").exists()
    import hwnas

    with pytest.raises(HwnasError, match=r"pip install 'hwnas\[mlflow\]'"):
        hwnas.MlflowCallback()


def test_finalists_extra_seeds_go_to_their_nested_run(store, tmp_path):
    """The finals (a training source's extra seeds) fed as events: each seed's accuracy on the finalist's nested
    run (step: the seed), its mean and spread at the end."""
    from hwnas.search.config import RunConfig
    from hwnas.search.events import FinalistTrained, SearchFinished, SearchStarted, Trained
    from hwnas.search.result import Finalist, SearchResult, Trial
    from hwnas.search.state import Verified
    from hwnas.search.tracking import MlflowCallback

    uri, client = store
    (tmp_path / "run").mkdir()
    arch = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    record = Verified(arch=arch, accuracy=0.9, latency_ms=0.5, round=0)
    callback = MlflowCallback(uri, report=False)
    callback(SearchStarted(max_trainings=3, trainings_done=0, budget_ms=1.0, run_dir=tmp_path / "run",
                           config=RunConfig(budget_ms=1.0, space="nb201")))
    callback(Trained(record=record, best=record, measurements=1))
    for replica, accuracy in ((1, 0.88), (2, 0.86)):
        callback(FinalistTrained(arch=arch, replica=replica, seeds=2, accuracy=accuracy))
    trial = Trial(number=1, round=0, arch=arch, accuracy=0.9, latency_ms=0.5, mean_accuracy=0.88,
                  accuracy_std=0.02, seeds=3)
    callback(SearchFinished(result=SearchResult(
        run_dir=tmp_path / "run", best=trial, pareto_front=[trial], budget_ms=1.0,
        stop_reason="training budget spent (3)", trainings_used=3, measurements_used=1, trials=[trial],
        finalists=[Finalist(arch=arch, latency_ms=0.5, accuracies=[0.9, 0.88, 0.86], mean=0.88, std=0.02)])))
    _, [child] = _runs(client)
    history = client.get_metric_history(child.info.run_id, "final_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.88), (2, 0.86)]
    assert child.data.metrics["final_accuracy_mean"] == 0.88 and child.data.metrics["final_accuracy_std"] == 0.02
