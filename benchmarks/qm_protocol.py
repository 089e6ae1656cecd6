"""The QM9 protocol as the benchmarks run it: molecule sets, timed stages, differences, fits.

Shared by ``gpu_check`` (GPU against CPU), ``bench_protocol`` (core-seconds per molecule and their
scaling with the basis size, issue #14 item 5) and ``bench_settings`` (what a Hessian/response
setting costs and changes, item 2). Every stage runs through :func:`hessflow.qm.tasks.run_task`,
the route a workflow takes (optimisation and its pre-steps, the imaginary-mode policy), and is
timed with :func:`benchmarks.common.timed`: wall seconds, CPU (core-)seconds of this process and
its waited-for children (psi4 runs in a child), 1-minute load before and after.
"""

from __future__ import annotations

import csv
import traceback
from pathlib import Path

import numpy as np

from hessflow.qm import tasks
from hessflow.qm.molecules.conformers import from_smiles
from hessflow.qm.level import Level

from . import common

STAGES = ("opt", "freq", "polar", "hyperpolar")
QM9_CSV = common.ROOT.parent / "shared" / "data" / "qm9_subset.csv"
#: plain results kept from a stage's output (arrays become lists)
KEEP = ("energy_hartree", "coords_opt_bohr", "frequencies_cm1", "zpve_hartree", "n_imag",
        "alpha_bohr3", "alpha_iso_bohr3", "beta_au", "beta_vec_au")


def short(exc: BaseException, limit: int = 300) -> str:
    msg = " ".join(f"{type(exc).__name__}: {exc}".split())
    return msg if len(msg) <= limit else msg[:limit - 3] + "..."


def plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def run_stage(rec: dict, stage: str, fn, log=print, label: str = ""):
    """Time ``fn()`` as ``rec["stages"][stage]``; a failure is recorded (rec["status"] becomes
    "failed"), not raised. Returns what ``fn`` returned, or None."""
    st: dict = {}
    out = None
    try:
        with common.timed() as t:
            out = fn()
        st.update(status="ok", **dict(t))
    except Exception as exc:  # a failed stage is a result of the benchmark, not a crash
        st.update(status=f"failed: {short(exc)}", traceback=traceback.format_exc(limit=4))
        rec["status"] = "failed"
    rec["stages"][stage] = st
    log(f"  {label:28s} {stage:12s} {st['status'][:60]:10s} {common.fmt_s(st.get('seconds'))} s"
        f"  ({common.fmt_s(st.get('cpu_seconds'))} core-s)")
    return out


def n_basis(mol, level: Level) -> int | None:
    """Number of basis functions of ``mol`` in ``level.basis`` (PySCF's count; None when PySCF
    does not know the basis, e.g. xTB)."""
    from pyscf import gto
    try:
        return int(gto.M(atom=[(int(z), tuple(r)) for z, r in zip(mol.numbers, mol.coords_bohr)],
                         unit="Bohr", basis=level.basis, cart=level.cartesian_d,
                         charge=int(mol.charge), spin=int(mol.multiplicity) - 1, verbose=0).nao)
    except Exception:  # noqa: BLE001 - an unknown basis only loses the scaling fit
        return None


def protocol(engine, mol, level: Level, stages=STAGES, log=print, label: str = "",
             start_coords_bohr=None) -> dict:
    """Run ``stages`` (in protocol order) on ``mol`` with ``engine``: opt from ``mol``'s geometry,
    the others at the optimised geometry (or at ``start_coords_bohr`` / ``mol``'s without opt).
    Returns {"status", "stages": {stage: timing}, "n_basis", "n_opt_steps", plain results...}."""
    rec = {"status": "ok", "stages": {},
           "n_basis": None if engine.name == "xtb" else n_basis(mol, level)}
    geom = mol if start_coords_bohr is None else mol.with_coords(np.asarray(start_coords_bohr))
    label = label or f"{engine.name} {mol.name}"
    for stage in (s for s in STAGES if s in stages):
        if stage != "opt" and "opt" in stages and "coords_opt_bohr" not in rec:
            rec["stages"][stage] = {"status": "skipped: no optimised geometry"}
            continue
        g = geom
        out = run_stage(rec, stage, lambda: tasks.run_task(
            stage, g, engine, level, optimized="opt" in stages), log, label)
        if out is None:
            continue
        if "_opt_steps" in out:
            rec["n_opt_steps"] = int(out["_opt_steps"])
        rec.update({k: plain(v) for k, v in out.items() if k in KEEP})
        if "coords_opt_bohr" in out:
            geom = mol.with_coords(np.asarray(out["coords_opt_bohr"]))
    rec["total_s"] = sum(s.get("seconds") or 0 for s in rec["stages"].values())
    rec["total_cpu_s"] = sum(s.get("cpu_seconds") or 0 for s in rec["stages"].values())
    return rec


def differences(ref: dict, other: dict) -> dict:
    """Energy (Eh), largest frequency (cm^-1), ZPVE / alpha / beta (relative) differences of two
    protocol records, for the quantities both have."""
    d = {}
    if "energy_hartree" in ref and "energy_hartree" in other:
        d["energy_hartree"] = abs(other["energy_hartree"] - ref["energy_hartree"])
    if "frequencies_cm1" in ref and "frequencies_cm1" in other:
        d["freq_cm1"] = float(np.abs(np.subtract(other["frequencies_cm1"],
                                                 ref["frequencies_cm1"])).max())
    if "zpve_hartree" in ref and "zpve_hartree" in other:
        d["zpve_rel"] = abs(other["zpve_hartree"] / ref["zpve_hartree"] - 1.0)
    for key, name in (("alpha_bohr3", "alpha_rel"), ("beta_au", "beta_rel")):
        if key in ref and key in other:
            a0, a1 = np.asarray(ref[key]), np.asarray(other[key])
            d[name] = float(np.abs(a1 - a0).max() / max(np.abs(a0).max(), 1e-12))
    return d


def heavy_atoms(smiles: str) -> int:
    from rdkit import Chem
    return Chem.MolFromSmiles(smiles).GetNumHeavyAtoms()


def select_qm9(n: int = 20, heavy_min: int = 3, heavy_max: int = 9, path: Path = QM9_CSV):
    """``n`` molecules of the QM9 subset with ``heavy_min``..``heavy_max`` heavy atoms, the same on
    every run: round-robin over the heavy-atom counts, smallest first, each time the next one of
    that count in file order, a count that has run out being passed over (20 of 3-9 in the
    shipped subset: its one 3-heavy-atom molecule, ethanol, and three or four of each other count). Returns
    [(mol_id, smiles, heavy atoms, QM9 row)]."""
    by_count: dict[int, list] = {k: [] for k in range(heavy_min, heavy_max + 1)}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            k = heavy_atoms(row["smiles"])
            if k in by_count and len(by_count[k]) < n:
                by_count[k].append((row["mol_id"], row["smiles"], k, row))
            if all(len(v) >= n for v in by_count.values()):
                break
    out, i = [], 0
    while len(out) < n and any(len(v) > i for v in by_count.values()):
        out += [v[i] for v in by_count.values() if len(v) > i][: n - len(out)]
        i += 1
    return out


def pick(n: int = 20, ids: str | None = None, first: int | None = None, heavy_min: int = 3):
    """:func:`select_qm9` (``n``, ``heavy_min``), then only the comma-separated ``ids``, then the
    ``first`` K."""
    mols = select_qm9(n, heavy_min=heavy_min)
    if ids:
        want = {i.strip() for i in ids.split(",")}
        mols = [m for m in mols if m[0] in want]
    return mols[:first] if first else mols


def molecule(mol_id: str, smiles: str):
    """The RDKit/MMFF start geometry a workflow would use (fixed seed)."""
    return from_smiles(smiles, mol_id)


def fit_exponent(n_bf, seconds) -> dict | None:
    """Least-squares fit of log t = p log N + c: {"p", "p_stderr", "n"} (None with < 3 points).
    ``n_bf``: basis functions; ``seconds``: the stage's (core-)seconds."""
    pts = [(float(x), float(y)) for x, y in zip(n_bf, seconds) if x and y and y > 0]
    if len(pts) < 3:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    a = np.vstack([x, np.ones_like(x)]).T
    coef, res, *_ = np.linalg.lstsq(a, y, rcond=None)
    dof = len(pts) - 2
    s2 = float(res[0]) / dof if dof > 0 and len(res) else 0.0
    cov = s2 * np.linalg.inv(a.T @ a)
    return {"p": float(coef[0]), "p_stderr": float(np.sqrt(cov[0, 0])), "n": len(pts)}
