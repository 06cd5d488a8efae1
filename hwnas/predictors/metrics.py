"""Quality metrics of predictors: relative-error shares for latency, rank agreement for accuracy."""

from __future__ import annotations

import numpy as np
from scipy import stats


def _arrays(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values, y_pred {p.size}")
    return t, p


def within(y_true, y_pred, tolerance: float) -> float:
    """Share of predictions whose relative error ``|pred/true - 1|`` is at most ``tolerance``."""
    t, p = _arrays(y_true, y_pred)
    return float(np.mean(np.abs(p / t - 1.0) <= tolerance + 1e-12)) if t.size else float("nan")


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, in percent."""
    t, p = _arrays(y_true, y_pred)
    return float(np.mean(np.abs(p / t - 1.0)) * 100.0) if t.size else float("nan")


def rmse(y_true, y_pred) -> float:
    t, p = _arrays(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2))) if t.size else float("nan")


def mae(y_true, y_pred) -> float:
    t, p = _arrays(y_true, y_pred)
    return float(np.mean(np.abs(p - t))) if t.size else float("nan")


def spearman(y_true, y_pred) -> float:
    t, p = _arrays(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(stats.spearmanr(t, p).statistic)


def kendall(y_true, y_pred) -> float:
    """Kendall's tau-b."""
    t, p = _arrays(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(stats.kendalltau(t, p).statistic)


def top_k_precision(y_true, y_pred, k: int = 10) -> float:
    """Share of the truly best ``k`` (highest ``y_true``) that are among the predicted best ``k``."""
    t, p = _arrays(y_true, y_pred)
    k = min(k, t.size)
    if k == 0:
        return float("nan")
    best_true = set(np.argsort(-t, kind="stable")[:k])
    best_pred = set(np.argsort(-p, kind="stable")[:k])
    return len(best_true & best_pred) / k


def latency_metrics(y_true, y_pred) -> dict[str, float]:
    """within_5pct, within_10pct (shares), mape (%), rmse (ms), spearman, kendall."""
    return {"within_5pct": within(y_true, y_pred, 0.05), "within_10pct": within(y_true, y_pred, 0.10),
            "mape": mape(y_true, y_pred), "rmse": rmse(y_true, y_pred), "spearman": spearman(y_true, y_pred),
            "kendall": kendall(y_true, y_pred)}


def accuracy_metrics(y_true, y_pred) -> dict[str, float]:
    """kendall, spearman, mae, top10_precision."""
    return {"kendall": kendall(y_true, y_pred), "spearman": spearman(y_true, y_pred), "mae": mae(y_true, y_pred),
            "top10_precision": top_k_precision(y_true, y_pred, 10)}
