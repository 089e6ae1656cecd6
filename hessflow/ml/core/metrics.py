"""Regression metrics reported on every split."""

from __future__ import annotations

import numpy as np


def regression_metrics(y_true, y_pred) -> dict:
    """MAE, RMSE, MRE (mean |error| / |true|, over non-zero targets), Pearson r and R².

    Multi-output targets are flattened; entries whose target is not finite (the NaN padding of
    a set-valued target such as the 3N-6 frequencies) are left out."""
    t = np.asarray(y_true, float).ravel()
    p = np.asarray(y_pred, float).ravel()
    real = np.isfinite(t)
    t, p = t[real], p[real]
    if t.size == 0:
        return {"n": 0, **{k: float("nan") for k in ("mae", "rmse", "mre", "pearson_r", "r2")}}
    err = p - t
    out = {"n": int(t.size), "mae": float(np.abs(err).mean()),
           "rmse": float(np.sqrt((err ** 2).mean()))}
    nz = np.abs(t) > 1e-12
    out["mre"] = float((np.abs(err[nz]) / np.abs(t[nz])).mean()) if nz.any() else float("nan")
    if t.size > 1 and t.std() > 0 and p.std() > 0:
        out["pearson_r"] = float(np.corrcoef(t, p)[0, 1])
    else:
        out["pearson_r"] = float("nan")
    ss_tot = ((t - t.mean()) ** 2).sum()
    out["r2"] = float(1 - (err ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")
    return out
