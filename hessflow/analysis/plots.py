"""Figures for run directories (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def parity_plot(run_dir, out=None, label: str = "") -> Path:
    """Predicted vs reference for the train/val/test splits of a training run."""
    run_dir = Path(run_dir)
    preds = json.loads((run_dir / "predictions.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.6), dpi=120)
    lo, hi = np.inf, -np.inf
    for split, colour in (("train", "#9ab"), ("val", "#e90"), ("test", "#c23")):
        d = preds.get(split)
        if not d or not d["y"]:
            continue
        y, p = np.asarray(d["y"]), np.asarray(d["pred"])
        m = metrics.get(split, {})
        ax.scatter(y, p, s=10, c=colour, alpha=0.8,
                   label=f"{split} (n={len(y)}, MAE {m.get('mae', float('nan')):.3g}, "
                         f"R² {m.get('r2', float('nan')):.2f})")
        lo, hi = min(lo, y.min(), p.min()), max(hi, y.max(), p.max())
    if np.isfinite(lo):
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    target = label or metrics.get("spec", {}).get("target", "target")
    from ..ml.data import UNITS
    if target in UNITS:
        target = f"{target} ({UNITS[target]})"
    ax.set_xlabel(f"reference {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    out = Path(out or run_dir / "parity.png")
    fig.savefig(out)
    plt.close(fig)
    return out
