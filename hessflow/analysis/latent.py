"""The latent-space figure of a SMILES VAE run (``latent_pca.png``).

The data (posterior means on their first two principal components, with the properties that
colour them) come from :func:`hessflow.ml.vae.latent_pca`; this module only draws them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..ml.vae import VAERun, latent_pca, load_vae_run
from .plots import _plt


def latent_pca_plot(run: VAERun, png=None, split: str = "test", max_points: int = 3000,
                    seed: int = 0) -> Path:
    """The posterior means of ``split`` (all molecules when the split is empty) projected on
    their first two principal components, one panel per property coloured by its value (one
    uncoloured panel for a run without properties). ``png`` defaults to the run directory's
    ``latent_pca.png``; returns its path."""
    pca = latent_pca(run, split, max_points, seed)
    props = list(pca.colours) or [None]
    plt = _plt()
    fig, axes = plt.subplots(1, len(props), figsize=(4.2 * len(props), 3.8), dpi=110,
                             squeeze=False)
    var = pca.explained
    for ax, p in zip(axes[0], props):
        sc = ax.scatter(pca.coords[:, 0], pca.coords[:, 1], c=pca.colours.get(p), s=5,
                        cmap="viridis", alpha=0.8)
        if p:
            fig.colorbar(sc, ax=ax, label=f"{p} ({pca.units.get(p, '')})")
            ax.set_title(p)
        ax.set_xlabel(f"PC1 ({var[0]:.0%})")
        ax.set_ylabel(f"PC2 ({var[1]:.0%})" if len(var) > 1 else "PC2")
    fig.suptitle(f"latent means, {split} split (n={len(pca.indices)})", fontsize=9)
    fig.tight_layout()
    out = Path(png or (run.run_dir or Path(".")) / "latent_pca.png")
    fig.savefig(out)
    plt.close(fig)
    return out


def write_latent_pca(run_dir) -> Path | None:
    """``latent_pca.png`` of a finished ``hessflow vae train`` run directory; a figure that
    cannot be drawn is one line on stderr (it must not lose the run) and None."""
    try:
        return latent_pca_plot(load_vae_run(run_dir), Path(run_dir) / "latent_pca.png")
    except Exception as exc:  # noqa: BLE001 - a figure must not lose the run
        print(f"hessflow vae: latent PCA plot not written: {exc}", file=sys.stderr)
        return None
