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
    from ..ml.core.data import UNITS
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


def learning_curve(metrics, out) -> Path | None:
    """Training and validation loss (standardised-label MSE) per epoch, log scale; the selected
    (best validation) epoch is marked. ``metrics`` is a run's metrics.json (dict or path). None
    when the run has no history."""
    if not isinstance(metrics, dict):
        metrics = json.loads(Path(metrics).read_text())
    hist = metrics.get("history") or []
    if not hist:
        return None
    plt = _plt()
    ep = np.array([h["epoch"] for h in hist]) + 1
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=120)
    for key, colour, lab in (("train_loss", "#47a", "train"), ("val_loss", "#e90", "validation")):
        v = np.array([h.get(key, np.nan) for h in hist], float)
        if np.isfinite(v).any():
            ax.plot(ep, v, "-o", ms=2.5, lw=1.2, c=colour, label=lab)
    best = metrics.get("best_epoch")
    if best is not None and best >= 0:
        ax.axvline(best + 1, c="#888", ls=":", lw=1, label=f"selected (epoch {best + 1})")
    vals = np.array([[h.get("train_loss", np.nan), h.get("val_loss", np.nan)] for h in hist], float)
    if np.all(vals[np.isfinite(vals)] > 0):
        ax.set_yscale("log")
    units = metrics.get("loss_units", "standardised")
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"MSE loss ({units} labels)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out


def _type_axis(ax, x, names, title: str, ylabel: str):
    """Feature types along x, a zero line, title, y label and legend."""
    ax.axhline(0, c="k", lw=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=6.5)


def relevance_bars(summary: dict, out, per_sample: dict | None = None) -> Path:
    """Relevance per feature type from an explain summary (explain.json).

    Top row: bars of the mean relevance per type (standardised label units; x label_std gives
    the target's units) with error bars of one standard deviation over the molecules, a signed
    and an absolute panel, each with all molecules and without the prediction outliers.
    Bottom row (when ``per_sample`` = {"signed", "absolute": (S, n), "outlier": (S,)} is given):
    the distribution over molecules of the paper-normalised relevance (zero mean per type, one
    scale: the largest absolute value), as box plots, all vs without outliers."""
    from .feature_types import paper_normalise
    names = list(summary["feature_types"])
    groups = [("all", "all molecules", "#47a"), ("without_outliers", "without outliers", "#e90")]
    plt = _plt()
    rows = 2 if per_sample is not None else 1
    fig, axes = plt.subplots(rows, 2, figsize=(max(7.5, 0.7 * len(names) + 4.0), 3.9 * rows),
                             dpi=110, squeeze=False)
    x = np.arange(len(names))
    w = 0.38
    out_mask = None
    if per_sample is not None:
        out_mask = np.asarray(per_sample.get("outlier", np.zeros(len(per_sample["signed"]))), bool)
    for col, kind in enumerate(("signed", "absolute")):
        ax = axes[0, col]
        for g, (grp, lab, colour) in enumerate(groups):
            d = summary["relevance"].get(grp, {}).get(kind)
            if not d or not d.get("n"):
                continue
            mean = np.array([d["mean"][n] for n in names], float)
            std = np.nan_to_num(np.array([d["std"][n] for n in names], float))
            ax.bar(x + (g - 0.5) * w, mean, w, yerr=std, color=colour, capsize=2,
                   error_kw={"lw": 0.8}, label=f"{lab} (n={d['n']})")
        _type_axis(ax, x, names, f"{kind} relevance per atom, mean ± s.d.",
                   "standardised label units")
        if rows == 2:
            ax = axes[1, col]
            v = np.asarray(per_sample[kind], float)
            sets = [("all", paper_normalise(v), "#47a")]
            if out_mask.any() and (~out_mask).any():
                sets.append(("without outliers", paper_normalise(v, exclude=out_mask), "#e90"))
            for g, (lab, vals, colour) in enumerate(sets):
                pos = x + ((g - 0.5) * w if len(sets) == 2 else 0)
                bp = ax.boxplot([vals[:, k] for k in range(len(names))], positions=pos,
                                widths=w * 0.9, patch_artist=True, showfliers=True,
                                flierprops={"markersize": 2}, medianprops={"color": "k"},
                                manage_ticks=False)
                for patch in bp["boxes"]:
                    patch.set_facecolor(colour)
                    patch.set_alpha(0.7)
                ax.plot([], [], "s", c=colour, label=lab)
            _type_axis(ax, x, names, f"{kind}, paper-normalised (zero mean per type)",
                       "normalised relevance")
    n_out = summary.get("outliers", {}).get("n", 0)
    split = summary.get("split", "?")
    where = "all molecules" if split == "all" else f"the {split} split"
    fig.suptitle(f"LRP ({summary.get('rule', '?')}) on {where}: "
                 f"{summary.get('n_samples', '?')} molecules, {n_out} outliers "
                 f"({summary.get('outliers', {}).get('rule', '')})", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out


def displacement_histograms(molecules, augment, out, n_molecules: int = 4, n_samples: int = 500,
                            seed: int = 0) -> Path:
    """Per-atom displacement |x - x_eq| (Angstrom) of geometries drawn by
    :mod:`hessflow.ml.property.augment` for the first ``n_molecules`` molecules (dicts with numbers,
    coords_bohr, masses_amu, hessian). ``augment`` is (distribution, temperature K, samples)."""
    from ..ml.property.augment import sample_normal_modes
    from ..qm.molecules.elements import symbol
    from ..units import BOHR_ANGSTROM
    dist, temp, _ = augment
    mols = [m for m in molecules if m.get("hessian") is not None][:n_molecules]
    if not mols:
        raise ValueError("displacement_histograms: no molecule with a Hessian")
    plt = _plt()
    cols = min(2, len(mols))
    rows = (len(mols) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.0 * rows), dpi=110, squeeze=False)
    rng = np.random.default_rng(seed)
    colours = {1: "#999", 6: "#333", 7: "#36c", 8: "#d33", 9: "#3a3"}
    for ax, m in zip(axes.ravel(), mols):
        geo = sample_normal_modes(m["coords_bohr"], m["masses_amu"], m["hessian"], n_samples,
                                  temp, dist, rng)
        d = np.linalg.norm(geo - np.asarray(m["coords_bohr"])[None], axis=-1) * BOHR_ANGSTROM
        bins = np.linspace(0, max(float(d.max()), 1e-6), 40)
        for a, z in enumerate(m["numbers"]):
            ax.hist(d[:, a], bins=bins, histtype="step", lw=0.9, color=colours.get(int(z), "#a6c"),
                    label=symbol(int(z)) if symbol(int(z)) not in ax.get_legend_handles_labels()[1]
                    else None)
        ax.set_title(f"{m.get('name') or m.get('smiles', '')} ({len(m['numbers'])} atoms)",
                     fontsize=8)
        ax.set_xlabel("displacement |x - x_eq| (Å)", fontsize=8)
        ax.set_ylabel("samples", fontsize=8)
        ax.legend(fontsize=6.5, title="per atom", title_fontsize=6.5)
    for ax in axes.ravel()[len(mols):]:
        ax.axis("off")
    fig.suptitle(f"augmentation {dist} at {temp:g} K: {n_samples} draws per molecule", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out


def frequency_spectra(predictions: dict, out, split: str = "test", n_molecules: int = 4,
                      width_cm1: float = 10.0) -> Path | None:
    """Predicted vs reference (QM, e.g. DFT) vibrational spectra for a multi-output
    ``frequencies`` target: unit-intensity Lorentzian sticks (FWHM ``width_cm1``) at each
    frequency; padding (NaN or non-positive reference entries) is left out. None when the split
    has no vector predictions."""
    d = predictions.get(split) or {}
    ys, ps = d.get("y") or [], d.get("pred") or []
    pairs = [(np.asarray(y, float).ravel(), np.asarray(p, float).ravel()) for y, p in zip(ys, ps)]
    pairs = [(y, p) for y, p in pairs if y.size > 1][:n_molecules]
    if not pairs:
        return None
    names = d.get("names") or [f"{split} {i}" for i in range(len(pairs))]
    plt = _plt()
    fig, axes = plt.subplots(len(pairs), 1, figsize=(6.4, 1.9 * len(pairs)), dpi=110, squeeze=False)
    for ax, (y, p), name in zip(axes[:, 0], pairs, names):
        real = np.isfinite(y) & (y > 0)
        p = p[real] if len(p) == len(y) else p[np.isfinite(p) & (p > 0)]
        y = y[real]
        hi = max(float(np.nanmax(y)) if y.size else 1.0, float(np.nanmax(p)) if p.size else 1.0)
        grid = np.linspace(0, hi * 1.08 + 50, 2000)
        g = width_cm1 / 2

        def spectrum(f):
            f = f[np.isfinite(f)]
            return (g ** 2 / ((grid[:, None] - f[None]) ** 2 + g ** 2)).sum(1)
        ax.plot(grid, spectrum(y), c="k", lw=0.9, label="reference (QM)")
        ax.plot(grid, -spectrum(p), c="#c23", lw=0.9, label="predicted (mirrored)")
        ax.axhline(0, c="#888", lw=0.5)
        ax.set_title(str(name), fontsize=8)
        ax.set_yticks([])
        ax.legend(fontsize=6.5, loc="upper left")
    axes[-1, 0].set_xlabel("wavenumber (cm⁻¹)")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out
