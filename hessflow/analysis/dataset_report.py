"""``hessflow report FILE.h5``: one self-contained HTML page of what a store holds.

The page (figures embedded as base64 PNGs; it works wherever it is copied) shows:

- counts by status and by failure reason, by engine and by level of theory;
- the label distributions of the done records: ZPVE (eV), polarizability alpha (Bohr^3), HOMO-LUMO
  gap (eV), dipole (Debye), beta_par (a.u.), and the thermochemistry columns once a store has them;
- a histogram of all harmonic frequencies (cm^-1) and stick spectra of a few molecules;
- the size distribution (atoms, heavy atoms);
- wall time per task against molecule size (the cost curve, from the provenance);
- the hosts that ran the tasks and the attempts each task took.

"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import HessflowError
from ..store import Store
from ..store.schema import SCALARS
from ..units import HARTREE_EV
from .report import _e, _figure, _note, html_page

__all__ = ["dataset_summary", "write_dataset_report", "LABELS"]

#: label column -> (title with unit, factor from the stored unit)
LABELS = {"zpve_hartree": ("ZPVE / eV", HARTREE_EV),
          "alpha_iso_bohr3": ("isotropic polarizability alpha / Bohr^3", 1.0),
          "gap_hartree": ("HOMO-LUMO gap / eV", HARTREE_EV),
          "dipole_debye": ("dipole moment / Debye", 1.0),
          "beta_par_au": ("hyperpolarizability beta_par / a.u.", 1.0)}
#: thermochemistry columns a store may hold (drawn when present): column -> title with unit
THERMO = {"enthalpy_hartree": ("enthalpy H(298 K) / Hartree", 1.0),
          "free_energy_hartree": ("free energy G(298 K) / Hartree", 1.0),
          "entropy_hartree_k": ("entropy S(298 K) / (Hartree/K)", 1.0),
          "cv_hartree_k": ("heat capacity Cv(298 K) / (Hartree/K)", 1.0)}
COLUMNS = ("name", "status", "reason", "engine", "method", "basis", "n_atoms", "provenance",
           "created_unix", "updated_unix", "wall_time_s", "n_imag")


def dataset_summary(path, n_spectra: int = 4) -> dict:
    """What the page shows, read from the store at ``path``: ``table`` (the scalar columns of
    every record, numpy arrays), ``heavy`` (heavy atoms per record), ``provenance`` (parsed, per
    record), ``frequencies`` (cm^-1, per done record) and ``spectra`` (name -> frequencies of up
    to ``n_spectra`` done molecules, the smallest, middle and largest ones)."""
    with Store(path, "r") as st:
        cols = [c for c in COLUMNS + tuple(LABELS) + tuple(THERMO) if c in SCALARS]
        t = {k: np.asarray(v) for k, v in st.table(cols).items()}
        keys = st.keys()
        extra = {r["key"]: r for r in st.get_many(keys, fields=["numbers", "frequencies_cm1"])}
    recs = [extra[k] for k in keys]
    heavy = np.array([int(np.count_nonzero(np.asarray(r["numbers"]) > 1))
                      if r["numbers"] is not None else 0 for r in recs])
    prov = []
    for p in t["provenance"]:
        try:
            prov.append(json.loads(str(p) or "{}"))
        except ValueError:
            prov.append({})
    status = t["status"].astype(str)
    done = [i for i in range(len(recs)) if status[i] == "done"
            and recs[i]["frequencies_cm1"] is not None and len(recs[i]["frequencies_cm1"])]
    freqs = {i: np.asarray(recs[i]["frequencies_cm1"], float) for i in done}
    chosen = []
    if done:
        order = sorted(done, key=lambda i: (int(t["n_atoms"][i]), str(t["name"][i])))
        picks = np.linspace(0, len(order) - 1, min(n_spectra, len(order))).round().astype(int)
        chosen = [order[j] for j in dict.fromkeys(picks.tolist())]
    return {"table": t, "heavy": heavy, "provenance": prov, "status": status,
            "frequencies": freqs,
            "spectra": {f"{t['name'][i]} ({int(t['n_atoms'][i])} atoms)": freqs[i]
                        for i in chosen}}


# -- tables ------------------------------------------------------------------------------------
def _count_table(title: str, counts: Counter, total: int) -> str:
    rows = "".join(f'<tr><td class="k">{_e(k)}</td><td>{v}</td><td>{100.0 * v / total:.1f}%</td>'
                   f"</tr>" for k, v in counts.most_common())
    return (f'<table><tr><th class="k">{_e(title)}</th><th>records</th><th>share</th></tr>'
            f"{rows}</table>")


def _reason(text: str) -> str:
    """A failure reason without the molecule-specific details (``input: invalid SMILES``)."""
    text = str(text)
    head, _, tail = text.partition(":")
    return f"{head}: {tail.split(chr(39))[0].split('(')[0].strip()}".rstrip(": ") if tail else text


def _tasks(prov: list, what: str) -> dict:
    """``provenance[what]`` (``wall_s``, ``hosts``, ``attempts``) gathered per task."""
    out: dict = {}
    for p in prov:
        for task, v in (p.get(what) or {}).items():
            out.setdefault(task, []).append(v)
    return out


# -- figures -----------------------------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _labels_figure(t: dict, ok: np.ndarray, path: Path):
    plt = _plt()
    cols = [(c, *LABELS[c]) for c in LABELS if c in t] + [(c, *THERMO[c]) for c in THERMO if c in t]
    cols = [(c, title, f) for c, title, f in cols if np.isfinite(t[c][ok].astype(float)).any()]
    if not cols:
        return None
    ncol = 3
    nrow = (len(cols) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(12, 3.2 * nrow), squeeze=False)
    for ax in axes.flat[len(cols):]:
        ax.set_visible(False)
    for ax, (c, title, f) in zip(axes.flat, cols):
        v = t[c][ok].astype(float) * f
        v = v[np.isfinite(v)]
        ax.hist(v, bins=min(40, max(5, len(v) // 3)), color="#4878a8")
        ax.set_xlabel(title)
        ax.set_ylabel("molecules")
        ax.set_title(f"n={len(v)}  mean={np.mean(v):.4g}  s.d.={np.std(v):.3g}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _frequency_figure(freqs: dict, spectra: dict, path: Path):
    if not freqs:
        return None
    plt = _plt()
    n = len(spectra)
    fig, axes = plt.subplots(1 + n, 1, figsize=(10, 2.6 + 1.5 * n), squeeze=False,
                             gridspec_kw={"height_ratios": [2.2] + [1] * n})
    ax = axes[0, 0]
    allf = np.concatenate(list(freqs.values()))
    ax.hist(allf, bins=np.arange(min(0.0, allf.min()) - 50, allf.max() + 100, 50.0),
            color="#4878a8")
    ax.set_xlabel("harmonic frequency / cm^-1")
    ax.set_ylabel("modes")
    ax.set_title(f"{len(allf)} frequencies of {len(freqs)} molecules (50 cm^-1 bins; "
                 f"negative: imaginary)", fontsize=10)
    hi = max(allf.max(), 100.0) * 1.03
    for ax, (name, f) in zip(axes[1:, 0], spectra.items()):
        ax.vlines(f, 0, 1, color="#a8484a")
        ax.set_xlim(min(0.0, allf.min()) - 50, hi)
        ax.set_ylim(0, 1.15)
        ax.set_yticks([])
        ax.text(0.01, 0.8, name, transform=ax.transAxes, fontsize=9)
    axes[-1, 0].set_xlabel("harmonic frequency / cm^-1 (sticks of unit height: the store keeps "
                           "no intensities)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _sizes_figure(atoms: np.ndarray, heavy: np.ndarray, path: Path):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, v, label in ((axes[0], atoms, "atoms"), (axes[1], heavy, "heavy atoms (Z > 1)")):
        bins = np.arange(v.min() - 0.5, v.max() + 1.5) if len(v) else 10
        ax.hist(v, bins=bins, color="#4878a8")
        ax.set_xlabel(f"{label} per molecule")
        ax.set_ylabel("molecules")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _cost_figure(atoms: np.ndarray, prov: list, path: Path):
    pts: dict = {}
    for n, p in zip(atoms, prov):
        for task, s in (p.get("wall_s") or {}).items():
            if isinstance(s, (int, float)) and s > 0:
                pts.setdefault(task, []).append((int(n), float(s)))
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for task, xy in sorted(pts.items()):
        x, y = np.array(xy).T
        ax.scatter(x, y, s=14, label=f"{task} ({len(x)})", alpha=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("atoms per molecule")
    ax.set_ylabel("wall time per task / s")
    ax.legend(fontsize=8, title="task (records)", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# -- the page ----------------------------------------------------------------------------------
def write_dataset_report(store_path, output=None, n_spectra: int = 4) -> Path:
    """Write the HTML page of the store at ``store_path`` to ``output`` (default
    ``STORE.report.html`` beside it; its PNGs go into ``STORE.report_files/``) and return its
    path. ``n_spectra``: molecules whose stick spectra are drawn."""
    store_path = Path(store_path)
    if not store_path.is_file():
        raise HessflowError(f"{store_path}: no such store")
    out = Path(output) if output else store_path.with_name(store_path.stem + ".report.html")
    if not out.parent.is_dir():
        raise HessflowError(f"{out}: no folder {out.parent}")
    figs = out.with_name(out.stem + "_files")
    figs.mkdir(exist_ok=True)
    d = dataset_summary(store_path, n_spectra)
    t, status, prov = d["table"], d["status"], d["provenance"]
    n = len(status)
    ok = status == "done"
    atoms = t["n_atoms"].astype(int)
    body = [f"<h1>hessflow store: {_e(store_path.name)}</h1>",
            f"<p>Store <code>{_e(store_path.resolve())}</code>: {n} records, "
            f"{int(ok.sum())} done.</p>", "<h2>Records</h2>"]
    if not n:
        body.append(_note("the store holds no records yet"))
        return _write(out, store_path, body)
    body.append(_count_table("status", Counter(status.tolist()), n))
    failed = [_reason(r) for r, s in zip(t["reason"].astype(str), status) if s == "failed"]
    if failed:
        body.append("<h3>Failure reasons</h3>" + _count_table("reason", Counter(failed), n))
    body.append("<h2>Engines and levels of theory</h2>")
    body.append(_count_table("engine", Counter(t["engine"].astype(str).tolist()), n))
    levels = [f"{e} {m}/{b}" if b else f"{e} {m}"
              for e, m, b in zip(t["engine"].astype(str), t["method"].astype(str),
                                 t["basis"].astype(str))]
    body.append(_count_table("level (engine method/basis)", Counter(levels), n))
    versions = Counter(str(p.get("engine_version", "?")) for p, s in zip(prov, status)
                       if s == "done")
    if versions:
        body.append(_count_table("engine version (done records)", versions, int(ok.sum())))

    body.append("<h2>Labels</h2>")
    png = _labels_figure(t, ok, figs / "labels.png") if ok.any() else None
    body.append(_figure(png, "label distributions", "Distributions of the done records' labels "
                        "(ZPVE and gap converted from Hartree to eV).") if png
                else _note("no done records with labels"))

    body.append("<h2>Frequencies</h2>")
    png = _frequency_figure(d["frequencies"], d["spectra"], figs / "frequencies.png")
    body.append(_figure(png, "frequency histogram and stick spectra",
                        "All harmonic frequencies, and the stick spectra of the smallest, a "
                        "middle and the largest molecules with frequencies.") if png
                else _note("no record has frequencies (task freq)"))

    body.append("<h2>Molecule sizes</h2>")
    has = atoms > 0  # inputs that could not be read have no structure
    body.append(_figure(_sizes_figure(atoms[has], d["heavy"][has], figs / "sizes.png"),
                        "size histograms", f"Atoms and heavy atoms per molecule, the "
                        f"{int(has.sum())} records with a structure.") if has.any()
                else _note("no record has a structure"))

    body.append("<h2>Cost</h2>")
    png = _cost_figure(atoms, prov, figs / "cost.png")
    body.append(_figure(png, "wall time per task against size", "Wall time of each task "
                        "(provenance) against the molecule's atoms: the cost curve.") if png
                else _note("no wall times in the provenance"))
    wall = t["wall_time_s"][ok].astype(float)
    if ok.any():
        body.append(f"<p>Compute time of the done records: total {np.nansum(wall) / 3600:.3g} h, "
                    f"mean {np.nanmean(wall):.3g} s, max {np.nanmax(wall):.3g} s.</p>")

    body.append("<h2>Hosts and attempts</h2>")
    hosts = Counter(h for v in _tasks(prov, "hosts").values() for h in v)
    if hosts:
        body.append(_count_table("host (tasks run)", hosts, sum(hosts.values())))
    att = _tasks(prov, "attempts")
    if att:
        rows = "".join(f'<tr><td class="k">{_e(task)}</td><td>{len(v)}</td>'
                       f"<td>{np.mean(v):.2f}</td><td>{max(v)}</td>"
                       f"<td>{sum(1 for a in v if a > 1)}</td></tr>"
                       for task, v in sorted(att.items()))
        body.append('<table><tr><th class="k">task</th><th>tasks</th><th>mean attempts</th>'
                    f"<th>max</th><th>retried</th></tr>{rows}</table>")
    else:
        body.append(_note("no hosts or attempts in the provenance"))
    return _write(out, store_path, body)


def _write(out: Path, store_path: Path, body: list) -> Path:
    out.write_text(html_page(f"hessflow store report: {store_path.name}", body), encoding="utf-8")
    return out
