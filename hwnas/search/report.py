"""``hwnas report``: one self-contained HTML page about a search run, or comparing several.

A page holds, per run, its settings, the answer (architecture, validation and test accuracy, measured latency
against the budget, why the search stopped) and the work done (trainings, measurements, rounds, time); figures
drawn with matplotlib and embedded as PNG data URIs (no file beside the page, no network):

- *Pareto front*: accuracy against measured latency of every trained architecture, the budget line and the
  chosen model (a star), in the unit the command line prints the budget in;
- *best so far*: the best accuracy under the budget after each training, and *progress over time*: the same
  against the run's wall-clock time;
- *predictors per round*: the accuracy predictor's mean absolute error and the latency predictor's MAPE on each
  round's new truth (``history.csv``);
- *budget use*: measured latency / budget of every measured candidate (trained or refused as too slow);
- *decision importance*: how far each decision alone moves the predictions of the run's last saved predictors
  (:mod:`hwnas.search.importance`);

and a table of every trial (:class:`~hwnas.search.result.Trial`), sorted by a click on a heading (a small inline
script, the page's only one).

With several runs each figure overlays them (one colour a run) and the settings table shows the settings that
differ between them first. Runs are read, never written: a running search can be reported (what it has so far).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hwnas import __version__
from hwnas.errors import HwnasError
from hwnas.io import atomic_write_text, check_output_file
from hwnas.search.curves import best_curve
from hwnas.search.config import RunConfig
from hwnas.search.importance import SAMPLES, DecisionImportance, decision_importance, latest_predictor, top
from hwnas.search.pareto import draw_pareto, plain
from hwnas.search.result import SearchResult, Trial
from hwnas.search.rundir import RunDir
from hwnas.units import format_latency, latency_unit

#: Settings shown first, in this order (others follow alphabetically).
KEY_SETTINGS = ("space", "dataset", "device", "budget_ms", "controller", "reward", "acquisition", "estimator",
                "max_trainings", "initial_trainings", "candidates_per_round", "seed", "recipe")
_HIDDEN = {"schema_version", "hwnas_version", "space_key", "dataset_key"}


class ReportError(HwnasError):
    """A run cannot be reported (not a run folder, nothing done yet)."""


@dataclass(frozen=True)
class RunView:
    """What a report shows of one run, read from its folder."""

    name: str
    path: Path
    config: RunConfig
    result: SearchResult | None
    trials: list[Trial]
    measured: list[dict]
    history: list[dict[str, str]]

    @property
    def budget_ms(self) -> float:
        return self.config.budget_ms

    @property
    def verified(self) -> list[dict[str, Any]]:
        """The trials as rows (``accuracy``, ``latency_ms``, ...) for the figures."""
        return [t.row() for t in self.trials]

    @property
    def best(self) -> Trial | None:
        if self.result is not None:
            return self.result.best
        feasible = [t for t in self.trials if t.latency_ms <= self.budget_ms]
        return max(feasible, key=lambda t: t.accuracy) if feasible else None


def load_run(path: str | os.PathLike) -> RunView:
    """Reads a run folder (finished or not)."""
    run = RunDir.open(path)
    state = run.load_state()
    if state is None:
        raise ReportError(f"{run.path} has not trained anything yet: nothing to report")
    result, trials = run.progress()
    return RunView(name=run.path.name, path=run.path, config=run.config, result=result, trials=trials,
                   measured=[vars(m) for m in state.measured], history=run.history())


def write_report(paths: Sequence[str | os.PathLike], output: str | os.PathLike, *, force: bool = False) -> Path:
    """Writes the HTML page about the runs in ``paths`` to ``output`` (atomically); returns its path.
    ``output`` is checked first (:func:`hwnas.io.check_output_file`; ``force``: through a symbolic link)."""
    target = check_output_file(output, force=force, inputs=paths, what="report", error=ReportError)
    runs = [load_run(p) for p in paths]
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # two folders of one name: tell them apart by their parent
        runs = [RunView(**{**r.__dict__, "name": f"{r.path.parent.name}/{r.name}"}) for r in runs]
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, render(runs))
    return target


# -- figures -------------------------------------------------------------------------------------------------

def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float = 6.4, height: float = 4.0, ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height), dpi=110)


def pareto_figure(runs: Sequence[RunView]) -> str:
    fig, ax = _figure()
    drawn: set[float] = set()
    for i, run in enumerate(runs):
        chosen = None if run.best is None else run.best.row()
        draw_pareto(ax, run.verified, budget_ms=run.budget_ms, chosen=chosen, color=f"C{i % 10}",
                    label=run.name if len(runs) > 1 else "", budget_line=run.budget_ms not in drawn,
                    title="accuracy vs measured latency" if len(runs) > 1 else run.name)
        drawn.add(run.budget_ms)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return _png(fig)


def progress_figure(runs: Sequence[RunView]) -> str:
    fig, ax = _figure()
    for i, run in enumerate(runs):
        curve = best_curve(run.verified, budget_ms=run.budget_ms)
        xs = [k + 1 for k, v in enumerate(curve) if v is not None]
        ax.step(xs, [v for v in curve if v is not None], where="post", color=f"C{i % 10}", label=plain(run.name))
    ax.set_xlabel("trainings")
    ax.set_ylabel("best validation accuracy under the budget")
    ax.set_title("best so far")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return _png(fig)


def time_figure(runs: Sequence[RunView]) -> str:
    """Best validation accuracy under the budget against the run's wall-clock time (over all its sessions)."""
    fig, ax = _figure()
    for i, run in enumerate(runs):
        # in the order they finished (parallel trainings are recorded in selection order)
        timed = sorted((t for t in run.trials if t.elapsed_s is not None), key=lambda t: t.elapsed_s or 0.0)
        curve = best_curve([t.row() for t in timed], budget_ms=run.budget_ms)
        points = [((t.elapsed_s or 0.0) / 60, v) for t, v in zip(timed, curve) if v is not None]
        if points:
            ax.step(*zip(*points), where="post", color=f"C{i % 10}", label=plain(run.name))
            ax.plot(*zip(*points), "o", ms=3, color=f"C{i % 10}")
    ax.set_xlabel("wall-clock time of the run (min)")
    ax.set_ylabel("best validation accuracy under the budget")
    ax.set_title("progress over time")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(loc="lower right", fontsize=7)
    else:
        ax.text(0.5, 0.5, "no timed training under the budget yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _png(fig)


def importance_figure(run: RunView, importances: Sequence[DecisionImportance]) -> str:
    """Two bar panels: how far each decision moves predicted accuracy (points) and latency (%)."""
    shown = list(reversed(top(importances)))
    fig, (acc_ax, lat_ax) = _figure(9.0, 0.8 + 0.28 * max(len(shown), 3), ncols=2)
    labels = [d.decision for d in shown]
    for ax, values, title in ((acc_ax, [None if d.accuracy is None else 100 * d.accuracy for d in shown],
                               "predicted accuracy spread (points)"),
                              (lat_ax, [None if d.latency is None else 100 * d.latency for d in shown],
                               "predicted latency spread (% of the median)")):
        if any(v is not None for v in values):
            ax.barh(range(len(shown)), [v or 0.0 for v in values], color="C0" if ax is acc_ax else "C1")
            ax.set_yticks(range(len(shown)), labels, fontsize=7)
        else:
            ax.text(0.5, 0.5, "no predictor saved", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _png(fig)


def run_importance(run: RunView) -> tuple[list[DecisionImportance], str]:
    """The decision importance of a run's last saved predictors, and which ones they are (empty: none saved)."""
    import numpy as np

    space = run.config.space
    accuracy = latest_predictor(run.path, "accuracy", space=space)
    latency = latest_predictor(run.path, "latency", space=space)
    if accuracy is None and latency is None:
        return [], ""
    described = [f"the {kind} predictor fit at the start of round {s.round}"
                 + (f" on {s.records} {what}" if s.records is not None else "")
                 for kind, s, what in (("accuracy", accuracy, "trainings"), ("latency", latency, "measurements"))
                 if s is not None]
    return decision_importance(run.config.create_space(), accuracy=accuracy.model if accuracy else None,
                               latency=latency.model if latency else None,
                               rng=np.random.default_rng(0)), " and ".join(described)


#: The trial table's columns: (heading, Trial attribute, how a value is shown).
_TRIAL_TABLE = (("#", "number", "{:d}"), ("round", "round", "{:d}"), ("architecture", "arch", "code"),
                ("val. acc.", "accuracy", "{:.4f}"), ("mean ± sd (seeds)", "mean_accuracy", "mean"),
                ("test acc.", "test_accuracy", "{:.4f}"), ("latency", "latency_ms", "latency"),
                ("params", "params", "{:,}"), ("MACs", "macs", "{:,}"), ("train s", "train_seconds", "{:.1f}"),
                ("at min", "elapsed_s", "minutes"), ("pred. acc.", "predicted_accuracy", "{:.4f}"))


def trials_table(run: RunView) -> str:
    """Every trained candidate as a table; a click on a heading sorts by it (the inline script below)."""
    best = run.best.arch if run.best is not None else None
    head = "".join(f'<th data-col="{i}" title="sort">{_e(h)}</th>' for i, (h, _, _) in enumerate(_TRIAL_TABLE))
    rows = []
    for trial in run.trials:
        cells = []
        for _, name, shown in _TRIAL_TABLE:
            value = getattr(trial, name)
            if value is None:
                cells.append('<td data-v="">—</td>')
                continue
            sort_key = value if isinstance(value, (int, float)) else _e(value)
            if shown == "code":
                text = f"<code>{_e(value)}</code>"
            elif shown == "mean":
                text = f"{value:.4f} ± {trial.accuracy_std or 0.0:.4f} ({trial.seeds})"
            elif shown == "latency":
                text = format_latency(value) + ("" if trial.latency_measured else " (predicted)")
                if value > run.budget_ms:
                    text += " over"
            elif shown == "minutes":
                text, sort_key = f"{value / 60:.1f}", value
            else:
                text = shown.format(value)
            cells.append(f'<td data-v="{sort_key}">{text}</td>')
        mark = ' class="chosen"' if trial.arch == best else ""
        rows.append(f"<tr{mark}>{''.join(cells)}</tr>")
    return (f'<table class="trials"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            if rows else "<p>no training yet</p>")


#: Sorts a ``table.trials`` by the clicked heading (numbers as numbers, missing values last; a second click
#: reverses); ``report.html#sort=3`` (``#sort=3-desc``) opens the page sorted by the fourth column. No network.
_SORT_SCRIPT = r"""
document.querySelectorAll("table.trials").forEach(function(table){
  table.querySelectorAll("th[data-col]").forEach(function(th){
    th.style.cursor="pointer";
    th.addEventListener("click",function(){
      var col=+th.dataset.col, body=table.tBodies[0], up=th.dataset.dir!=="asc";
      table.querySelectorAll("th[data-col]").forEach(function(o){delete o.dataset.dir;});
      th.dataset.dir=up?"asc":"desc";
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[col].dataset.v, y=b.cells[col].dataset.v;
        if(x===""&&y==="")return 0; if(x==="")return 1; if(y==="")return -1;
        var nx=Number(x), ny=Number(y);
        var c=(isFinite(nx)&&isFinite(ny))?nx-ny:(x<y?-1:x>y?1:0);
        return up?c:-c;
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
  var m=/^#sort=(\d+)(-desc)?$/.exec(location.hash);
  if(m){var th=table.querySelector('th[data-col="'+m[1]+'"]');if(th){th.click();if(m[2])th.click();}}
});
"""


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def predictor_figure(runs: Sequence[RunView]) -> str:
    fig, (acc_ax, lat_ax) = _figure(9.0, 3.6, ncols=2)
    for i, run in enumerate(runs):
        for ax, column in ((acc_ax, "accuracy_mae_new"), (lat_ax, "latency_mape_new")):
            points = [(int(row["round"]), _number(row.get(column))) for row in run.history]
            points = [(r, v) for r, v in points if v is not None]
            if points:
                ax.plot(*zip(*points), "o-", ms=4, color=f"C{i % 10}", label=plain(run.name))
    acc_ax.set_title("accuracy predictor: MAE on the round's new trainings", fontsize=9)
    lat_ax.set_title("latency predictor: MAPE (%) on the round's new measurements", fontsize=9)
    from matplotlib.ticker import MaxNLocator

    for ax in (acc_ax, lat_ax):
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no round finished yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _png(fig)


def budget_figure(runs: Sequence[RunView]) -> str:
    fig, ax = _figure()
    ratios = [[m["latency_ms"] / run.budget_ms for m in (run.measured or run.verified)] for run in runs]
    top = max([max(r) for r in ratios if r] + [1.5])
    bins = [k * min(top, 4.0) / 30 for k in range(31)]
    for i, (run, values) in enumerate(zip(runs, ratios)):
        ax.hist([min(v, bins[-1]) for v in values], bins=bins, alpha=0.5, color=f"C{i % 10}", label=plain(run.name))
    ax.axvline(1.0, color="C3", ls="--", label="budget")
    ax.set_xlabel("measured latency / budget (over 4x shown at 4)")
    ax.set_ylabel("measured candidates")
    ax.set_title("budget use")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


# -- page ----------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f5f5f5}td.differs{background:#fff7d6}
code{font-size:.85rem;word-break:break-all}
figure{margin:1rem 0}img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.85rem;color:#555}
.muted{color:#777;font-size:.85rem}
tr.chosen td{background:#eef6ff;font-weight:600}th[data-dir=asc]:after{content:" ▲"}
th[data-dir=desc]:after{content:" ▼"}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _setting(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "—"
    return "—" if value in (None, "") else str(value)


def _shown_settings(config: RunConfig) -> dict[str, Any]:
    """A run's settings as a report shows them: a page that is sent around holds no path of the machine that
    searched, so a user's data set is its name and key, and a file or folder given by an absolute path (a table,
    the store, a supernet) its name."""
    from hwnas.data.resolve import path_dataset

    settings = config.to_json()
    for key, value in settings.items():
        if isinstance(value, str) and os.path.isabs(value):
            settings[key] = Path(value).name
    if os.path.isabs(path_dataset(config.dataset)[1]):
        settings["dataset"] = f"{config.dataset_name or Path(path_dataset(config.dataset)[1]).name} " \
                              f"({config.dataset_key or 'key not recorded'})"
    return settings


def _settings_table(runs: Sequence[RunView]) -> str:
    settings = [_shown_settings(r.config) for r in runs]
    keys = sorted({k for c in settings for k in c} - _HIDDEN)
    values = {k: [_setting(c.get(k)) for c in settings] for k in keys}
    differing = [k for k in keys if len(set(values[k])) > 1]
    ordered = differing + [k for k in KEY_SETTINGS if k in keys and k not in differing] + sorted(
        k for k in keys if k not in differing and k not in KEY_SETTINGS)
    head = "".join(f"<th>{_e(r.name)}</th>" for r in runs)
    rows = []
    for key in ordered:
        shown = [format_latency(float(v)) if key == "budget_ms" and v != "—" else v for v in values[key]]
        cls = ' class="differs"' if key in differing else ""
        rows.append(f"<tr><th>{_e(key)}</th>" + "".join(f"<td{cls}>{_e(v)}</td>" for v in shown) + "</tr>")
    return f"<table><tr><th>setting</th>{head}</tr>{''.join(rows)}</table>"


def _answer_table(runs: Sequence[RunView]) -> str:
    head = "".join(f"<th>{_e(r.name)}</th>" for r in runs)

    def row(label: str, cells: list[str]) -> str:
        return f"<tr><th>{_e(label)}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"

    def cell(run: RunView, what: str) -> str:
        best, result = run.best, run.result
        if what == "arch":
            return f"<code>{_e(best.arch)}</code>" if best else "none under the budget"
        if what == "accuracy":
            return f"{best.accuracy:.4f}" if best else "—"
        if what == "finalists":
            finalists = result.finalists if result is not None else []
            if not finalists:
                return "—"
            return "<br>".join(f"{'<b>' if i == 0 else ''}{f.mean:.4f} ± {f.std:.4f} over {f.seeds} seeds"
                               f"{'</b>' if i == 0 else ''} <code>{_e(f.arch)}</code>"
                               for i, f in enumerate(finalists))
        if what == "test":
            test = result.test_accuracy if result is not None else None
            return f"{test:.4f}" if test is not None else "—"
        if what == "latency":
            if not best:
                return "—"
            unit, factor = latency_unit(run.budget_ms)
            return (f"{best.latency_ms * factor:.3g} {unit} of {run.budget_ms * factor:.3g} {unit} "
                    f"({100 * best.latency_ms / run.budget_ms:.0f}%)")
        if what == "work":
            if result is not None:
                trainings, measured, minutes = result.trainings_used, result.measurements_used, result.elapsed_s / 60
            else:
                trainings, measured = len(run.trials), len(run.measured)
                minutes = max((t.elapsed_s or 0.0 for t in run.trials), default=0.0) / 60
            return f"{trainings} trainings, {measured} measurements, {len(run.history)} rounds, {minutes:.1f} min"
        if what == "status":
            return _e(result.stop_reason if result is not None else "running or interrupted (no result yet)")
        return _e(result.warning or "") if result is not None and result.warning else "—"

    rows = [row("chosen architecture", [cell(r, "arch") for r in runs]),
            row("validation accuracy (its search training)", [cell(r, "accuracy") for r in runs]),
            row("finalists: mean ± standard deviation", [cell(r, "finalists") for r in runs]),
            row("test accuracy", [cell(r, "test") for r in runs]),
            row("measured latency / budget", [cell(r, "latency") for r in runs]),
            row("work", [cell(r, "work") for r in runs]),
            row("stopped because", [cell(r, "status") for r in runs]),
            row("warning", [cell(r, "warning") for r in runs])]
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _figure_html(name: str, uri: str, caption: str) -> str:
    return (f"<h2>{_e(name)}</h2><figure><img alt=\"{_e(name)}\" src=\"{uri}\">"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def render(runs: Sequence[RunView]) -> str:
    """The HTML page (a string) about ``runs``."""
    if not runs:
        raise ReportError("no run to report")
    title = (f"hwnas run {runs[0].name}" if len(runs) == 1 else
             f"hwnas: {len(runs)} runs compared")
    figures = [("Pareto front", pareto_figure(runs),
                "Every trained architecture (validation accuracy, measured latency), the front of those not "
                "dominated, the budget (dashed) and the chosen model (star)."),
               ("Best so far", progress_figure(runs),
                "Best validation accuracy among trained architectures within the budget, after each training."),
               ("Progress over time", time_figure(runs),
                "The same against the run's wall-clock time (every session of it, interruptions excluded)."),
               ("Predictors per round", predictor_figure(runs),
                "Error of the predictors on what each round newly trained and measured, before they saw it."),
               ("Budget use", budget_figure(runs),
                "Measured latency over the budget for every measured candidate; those right of 1 were never "
                "trained.")]
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>",
             f"<p class=\"muted\">made by hwnas {_e(__version__)} on {_e(created)} from "
             + ", ".join(f"<code>{_e(r.name)}</code>" for r in runs) + "</p>",
             "<h2>Answer</h2>", _answer_table(runs)]
    for name, uri, caption in figures:
        parts.append(_figure_html(name, uri, caption))
    for run in runs:
        importances, source = run_importance(run)
        heading = "Decision importance" + (f": {run.name}" if len(runs) > 1 else "")
        if not importances:
            parts.append(f"<h2>{_e(heading)}</h2><p>no predictors saved yet (they are fit from the first round "
                         f"on)</p>")
            continue
        parts.append(_figure_html(
            heading, importance_figure(run, importances),
            f"How far each decision alone moves the predictions of {source}: the mean, over {SAMPLES} random "
            f"architectures, of the spread across the decision's choices (accuracy in points, latency in % of "
            f"the median). What the predictors learned, not a measured truth; the "
            f"{min(len(importances), 12)} decisions that move either most are shown."))
    for run in runs:
        parts.append(f"<h2>{_e('Trials' + (f': {run.name}' if len(runs) > 1 else ''))}</h2>"
                     f"<p class=\"muted\">Every trained candidate ({len(run.trials)}); the answer is highlighted; "
                     f"click a heading to sort.</p>" + trials_table(run))
    parts += ["<h2>Settings</h2>", "<p class=\"muted\">Settings that differ between runs come first, "
              "highlighted.</p>" if len(runs) > 1 else "", _settings_table(runs),
              f"<script>{_SORT_SCRIPT}</script></body></html>"]
    return "\n".join(parts)
