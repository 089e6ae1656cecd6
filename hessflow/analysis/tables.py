"""Metrics of a training run as plain text: the one place that turns ``metrics.json`` numbers
into the lines ``hessflow train``, ``hessflow bp`` and ``hessflow vae`` print.

Every line goes through :func:`metrics_line` (one split: ``label n=N MAE=4.127 Bohr^3 RMSE=...``:
errors carry the target's unit, :data:`hessflow.ml.core.data.UNITS`) or, for
the columnar VAE predictor table, :func:`metrics_row`; both format each number with
:func:`number` (``-`` for a missing value). Metric keys are those of
:func:`hessflow.ml.core.metrics.regression_metrics` (``mae``, ``rmse``, ``mre``, ``pearson_r``,
``r2``); values are in the target's own units.
"""

from __future__ import annotations

import csv
import os

__all__ = ["LABELS", "UNIT_KEYS", "number", "metrics_line", "metrics_row", "target_unit",
           "train_lines", "kfold_lines",
           "bp_line", "vae_metrics_table", "write_rows_csv"]

# metric key -> the short label printed in front of its value
LABELS = {"mae": "MAE", "rmse": "RMSE", "mre": "MRE", "pearson_r": "r", "r2": "R2"}
# the metrics in the target's unit (MRE, r and R2 have none)
UNIT_KEYS = ("mae", "rmse")
SPLITS = ("train", "val", "test")


def number(x, fmt: str = ".3f") -> str:
    """``x`` formatted with ``fmt``; ``-`` when it is missing or not a number."""
    try:
        return format(float(x), fmt)
    except (TypeError, ValueError):
        return "-"


def metrics_line(label: str, m: dict, formats: dict, *, label_width: int = 5, n_width: int = 5,
                 std_format: str | None = None, unit: str = "") -> str:
    """One split on one line: ``label n=N KEY=value ...``.

    Args:
        label: the split's name (left-aligned in ``label_width`` characters).
        m: that split's metrics (``n`` and the keys of ``formats``; ``KEY_std`` with
            ``std_format``).
        formats: metric key -> format spec, in print order.
        std_format: with a format, each value is followed by ``±`` and its standard deviation
            over the folds of a k-fold run.
        unit: the target's unit (e.g. ``kcal/mol``), written after each value of
            :data:`UNIT_KEYS` (``MAE=0.412 kcal/mol``).
    """
    cells = [f"{label:{label_width}s} n={m['n']:{n_width}d}"]
    for key, fmt in formats.items():
        value = format(m[key], fmt)
        if std_format:
            value += "±" + format(m[f"{key}_std"], std_format)
        if unit and key in UNIT_KEYS:
            value += f" {unit}"
        cells.append(f"{LABELS[key]}={value}")
    return " ".join(cells)


def metrics_row(cells) -> str:
    """One row of a columnar table: ``(value, format, width)`` per cell, numbers right-aligned
    (a string value is left-aligned in its width)."""
    out = []
    for value, fmt, width in cells:
        if fmt is None:
            out.append(f"{value:{width}s}")
        elif fmt == "d":
            out.append(f"{value:{width}d}")
        else:
            out.append(f"{number(value, fmt):>{width}s}")
    return " ".join(out)


def target_unit(m: dict) -> str:
    """The unit of a property run's target (``m["spec"]["target"]``; "" when unknown)."""
    from ..ml.core.data import UNITS
    target = (m.get("spec") or {}).get("target")
    return UNITS.get(target, "") if target else ""


def train_lines(m: dict, unit: str | None = None) -> list[str]:
    """``hessflow train``: the train/val/test lines of one run's metrics, errors in ``unit``
    (default: the unit of the run's target)."""
    formats = {"mae": ".4g", "rmse": ".4g", "mre": ".3g", "pearson_r": ".3f", "r2": ".3f"}
    unit = target_unit(m) if unit is None else unit
    return [metrics_line(split, m[split], formats, unit=unit) for split in SPLITS]


def kfold_lines(m: dict, k: int, unit: str | None = None) -> list[str]:
    """``hessflow train --kfold K``: mean ± standard deviation over the folds, per split
    (errors in ``unit``; default: the unit of the run's target)."""
    formats = dict.fromkeys(("mae", "rmse", "mre", "pearson_r", "r2"), ".4g")
    unit = target_unit(m) if unit is None else unit
    return [f"{k}-fold cross-validation (mean ± standard deviation over the folds):"] + \
        [metrics_line(split, m[split], formats, n_width=6, std_format=".2g", unit=unit)
         for split in SPLITS]


def bp_line(name: str, m: dict) -> str:
    """``hessflow bp``: one split's energy errors (kcal/mol), molecules and per-element MAE."""
    line = metrics_line(name, m, {"mae": ".3f", "rmse": ".3f"}, label_width=9, unit="kcal/mol")
    if "n_molecules" in m:
        line += f" ({m['n_molecules']} molecules)"
    if "force_mae_ev_angstrom" in m:
        line += f"  forces MAE={m['force_mae_ev_angstrom']:.4f} eV/Angstrom"
    per = m.get("per_element") or {}
    if per:
        line += "  per element: " + " ".join(f"{el}={v['mae_kcalmol']:.2f}"
                                             for el, v in per.items())
    return line


def vae_metrics_table(m: dict, units: dict) -> str:
    """The metrics of a VAE run (``metrics.json``) as plain text; ``units``: property -> unit."""
    lines = []
    r = m.get("reconstruction")
    if r:
        lines.append(f"reconstruction  {number(r['accuracy'])}  ({r['n']} test molecules, greedy "
                     f"decoding of the posterior mean, canonical match; exact string "
                     f"{number(r['exact_string'])}, valid {number(r['validity'])})")
    p = m.get("prior")
    if p:
        lines.append(f"validity        {number(p['validity'])}  ({p['valid']}/{p['n']} prior "
                     f"samples, greedy)")
        lines.append(f"uniqueness      {number(p['uniqueness'])}  ({p['unique']} distinct valid)")
        lines.append(f"novelty         {number(p['novelty'])}  ({p['novel']} not in the training "
                     f"split)")
    pred = m.get("predictor") or {}
    if pred:
        lines.append("")
        lines.append(f"{'property':10s} {'split':5s} {'n':>6s} {'MAE':>10s} {'RMSE':>10s} "
                     f"{'r':>6s} {'R2':>6s}  unit")
        for split in SPLITS:
            for prop, s in (pred.get(split) or {}).items():
                row = metrics_row([(prop, None, 10), (split, None, 5), (s["n"], "d", 6),
                                   (s["mae"], ".4g", 10), (s["rmse"], ".4g", 10),
                                   (s["pearson_r"], ".3f", 6), (s["r2"], ".3f", 6)])
                lines.append(f"{row}  {units.get(prop, '')}")
    if m.get("train_molecules_per_s"):
        lines.append("")
        lines.append(f"training: {m['epochs_run']} epochs on {m['ranks']} rank(s), {m['device']}, "
                     f"{m['train_molecules_per_s']:.0f} molecules/s (all ranks); selected epoch "
                     f"{m['best_epoch']}")
    return "\n".join(lines)


def write_rows_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    """``rows`` (dicts with the same keys) as a CSV file with a header; nothing for no rows."""
    if not rows:
        return
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
