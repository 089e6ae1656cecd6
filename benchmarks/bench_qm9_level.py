"""QM9's own numbers at hessflow's default level: which basis definition and d/f shell convention
reproduce them.

For each molecule (QM9-subset rows loaded by path, plus water, whose QM9 record gdb_3 is quoted
below): RDKit/MMFF geometry -> GFN2-xTB optimisation (only a start) -> PySCF B3LYP/6-31G(2df,p)
optimisation (geomeTRIC, Gaussian's convergence set) in the convention ``--opt-shells`` (default
"6d7f"); at that geometry single points in every one of :data:`VARIANTS` (basis definition x
shell convention: total energy, HOMO, LUMO, dipole, <R^2>), the analytic alpha,
rotational constants, and for molecules of at most ``--hessian-max-heavy`` heavy atoms the
analytic Hessian (ZPVE). QM9's total energy is U0 - ZPVE (its own ZPVE).

Energies of the other variants are single points at the default's geometry: the geometry error
enters the energy in second order.

    python -m benchmarks.bench_qm9_level                  # run what is missing, resume-safe
    python -m benchmarks.bench_qm9_level --report --doc   # table -> docs/benchmarks.md

Every molecule is saved as soon as it is done (``benchmarks/results/qm9_level.json``); a rerun
skips what is saved. Wall and CPU seconds, load and machine are recorded.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import numpy as np

from hessflow.qm.engines import get_engine
from hessflow.qm.engines.pyscf_extras import electronic_spatial_extent
from hessflow.qm.harmonic import Harmonic
from hessflow.qm.level import SHELLS, Level
from hessflow.qm.molecules.conformers import from_smiles
from hessflow.qm.thermo import rotational_constants_ghz
from hessflow.units import AU_DEBYE

from . import common
from .qm_protocol import QM9_CSV, heavy_atoms

NAME = "qm9_level"
#: QM9 record gdb_3 (water; not in the shipped subset): Ramakrishnan et al., Sci. Data 1, 140022
WATER = {"mol_id": "gdb_3", "smiles": "O", "A": "799.58812", "B": "437.90386", "C": "282.94545",
         "mu": "1.8511", "alpha": "6.31", "homo": "-0.2928", "lumo": "0.0687", "r2": "19.0002",
         "zpve": "0.021375", "u0": "-76.404702"}
#: a molecule whose A, B, C differ from QM9's by more than this (%) was optimised into another
#: conformer (e.g. gauche ethanol where QM9 has trans): a different minimum, not the level
OTHER_CONFORMER_PCT = 1.0
#: heavy-atom count -> how many subset molecules of that size (file order), 20 with water
PLAN = {2: 1, 3: 1, 4: 3, 5: 5, 6: 3, 7: 2, 8: 2, 9: 2}
#: (label, basis, shells) of the single points; the first is hessflow's default level, "bse 5d7f"
#: the one before it (BSE's/PySCF's 6-31G(2df,p) exponents, pure shells)
VARIANTS = (("6d7f", "6-31g(2df,p)", "6d7f"), ("5d7f", "6-31g(2df,p)", "5d7f"),
            ("6d10f", "6-31g(2df,p)", "6d10f"), ("bse 5d7f", "6-31g(2df,p)-bse", "5d7f"),
            ("bse 6d7f", "6-31g(2df,p)-bse", "6d7f"))


def plan_rows(path=QM9_CSV, plan=PLAN) -> list[dict]:
    """Water, then the first ``plan[k]`` subset rows of each heavy-atom count k, smallest first."""
    picked: dict[int, list] = {k: [] for k in plan}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            k = heavy_atoms(row["smiles"])
            if k in picked and len(picked[k]) < plan[k]:
                picked[k].append(row)
    return [WATER] + [r for k in sorted(picked) for r in picked[k]]


def compute(row: dict, opt_shells: str, threads: int, hessian_max_heavy: int, log=print) -> dict:
    pyscf, xtb = get_engine("pyscf"), get_engine("xtb")
    out: dict = {"mol_id": row["mol_id"], "smiles": row["smiles"],
                 "heavy": heavy_atoms(row["smiles"]), "opt_shells": opt_shells, "timings": {}}
    mol = from_smiles(row["smiles"], row["mol_id"])
    with common.timed() as t:
        start = xtb.optimize(mol, Level.from_mapping({"threads": threads},
                                                     default_method=xtb.default_method))
    out["timings"]["xtb_opt"] = dict(t)
    level = Level(shells=opt_shells, threads=threads)
    with common.timed() as t:
        opt = pyscf.optimize(mol.with_coords(start.coords_bohr), level)
    out["timings"]["dft_opt"] = dict(t)
    out["opt_steps"] = opt.n_steps
    geom = mol.with_coords(opt.coords_bohr)
    out["coords_opt_bohr"] = opt.coords_bohr.tolist()
    out["rot_ghz"] = rotational_constants_ghz(geom.masses_amu, geom.coords_bohr).tolist()
    out["shells"] = {}
    for shells, basis, conv in VARIANTS:
        lv = Level(basis=basis, shells=conv, threads=threads)
        with common.timed() as t:
            sp = pyscf.single_point(geom, lv)
        mf = pyscf._cache_mf  # noqa: SLF001 - the converged SCF of this single point
        out["shells"][shells] = {
            "energy_hartree": sp.energy_hartree, "homo_hartree": sp.homo_hartree,
            "lumo_hartree": sp.lumo_hartree,
            "dipole_debye": float(np.linalg.norm(sp.dipole_au)) * AU_DEBYE,
            "r2_bohr2": electronic_spatial_extent(mf.mol, mf.make_rdm1()),
            "n_mo": int(mf.mo_coeff.shape[-1]), "n_ao": int(mf.mol.nao_nr()), "timing": dict(t)}
        log(f"  {row['mol_id']:10s} {shells:6s} E={sp.energy_hartree:.6f}  {t['seconds']:.0f} s")
    with common.timed() as t:
        alpha = pyscf.polarizability(geom, level)
    out["alpha_iso_bohr3"] = float(np.trace(alpha) / 3)
    out["timings"]["polar"] = dict(t)
    if out["heavy"] <= hessian_max_heavy:
        with common.timed() as t:
            hess = pyscf.hessian(geom, level)
        harm = Harmonic(geom.masses_amu, geom.coords_bohr, hess)
        out["zpve_hartree"] = harm.zpve_hartree()
        out["frequencies_cm1"] = harm.frequencies_cm1.tolist()
        out["timings"]["freq"] = dict(t)
    return out


def run(args) -> int:
    if not QM9_CSV.exists():
        print(f"bench_qm9_level: {QM9_CSV} is absent: nothing to compare with")
        return 0
    data = common.read_result(NAME) or {"machine": common.machine_info(), "molecules": {}}
    rows = plan_rows()
    if args.only:
        rows = [r for r in rows if r["mol_id"] in args.only.split(",")]
    for row in rows:
        if row["mol_id"] in data["molecules"] and not args.redo:
            continue
        print(f"{row['mol_id']} {row['smiles']}", flush=True)
        try:
            res = compute(row, args.opt_shells, args.threads, args.hessian_max_heavy)
        except Exception as exc:  # noqa: BLE001 - a failed molecule is a result, not a crash
            res = {"mol_id": row["mol_id"], "failed": f"{type(exc).__name__}: {exc}"}
            print(f"  failed: {res['failed']}", flush=True)
        res["qm9"] = {k: row[k] for k in ("A", "B", "C", "mu", "alpha", "homo", "lumo", "r2",
                                          "zpve", "u0")}
        res["date"] = common.now_iso()
        data["molecules"][row["mol_id"]] = res
        data["machine"] = common.machine_info()
        common.write_result(NAME, data)
    return 0


def _rel(a, b):
    return 100.0 * (a - b) / b


def rows_of(data: dict) -> list[dict]:
    """One dict per finished molecule: differences against QM9 in its units."""
    out = []
    for m in data.get("molecules", {}).values():
        if "failed" in m:
            continue
        q = {k: float(v) for k, v in m["qm9"].items()}
        e_qm9 = q["u0"] - q["zpve"]
        r = {"mol_id": m["mol_id"], "smiles": m["smiles"], "heavy": m["heavy"],
             "steps": m["opt_steps"], "dft_opt_s": m["timings"]["dft_opt"]["seconds"]}
        for label, *_ in VARIANTS:
            r[f"dE_{label}_mEh"] = 1000.0 * (m["shells"][label]["energy_hartree"] - e_qm9)
        s = m["shells"][VARIANTS[0][0]]
        r["dhomo_mEh"] = 1000.0 * (s["homo_hartree"] - q["homo"])
        r["dlumo_mEh"] = 1000.0 * (s["lumo_hartree"] - q["lumo"])
        r["dmu_D"] = s["dipole_debye"] - q["mu"]
        r["dr2_pct"] = _rel(s["r2_bohr2"], q["r2"])
        r["dalpha_pct"] = _rel(m["alpha_iso_bohr3"], q["alpha"])
        abc = [x for x in m["rot_ghz"]]
        r["dABC_pct"] = max((abs(_rel(x, q[k])) for x, k in zip(abc, "ABC")
                             if np.isfinite(x) and q[k] > 0), default=float("nan"))
        r["dzpve_pct"] = _rel(m["zpve_hartree"], q["zpve"]) if "zpve_hartree" in m else None
        r["same_conformer"] = bool(r["dABC_pct"] <= OTHER_CONFORMER_PCT)
        out.append(r)
    return sorted(out, key=lambda r: (r["heavy"], r["mol_id"]))


def _f(x, fmt="{:+.2f}"):
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else fmt.format(x)


def report(data: dict) -> str:
    rows = rows_of(data)
    if not rows:
        return "qm9_level: nothing measured yet (python -m benchmarks.bench_qm9_level)"
    head = ["molecule", "heavy", "DFT steps", "conformer"] + [f"dE {v[0]}" for v in VARIANTS] + [
        "dHOMO", "dLUMO", "dmu (D)", "dalpha %", "d<R2> %", "max dABC %", "dZPVE %"]
    body = [[f"{r['mol_id']} `{r['smiles']}`", r["heavy"], r["steps"],
             "QM9's" if r["same_conformer"] else "other",
             *(_f(r[f"dE_{v[0]}_mEh"]) for v in VARIANTS),
             _f(r["dhomo_mEh"], "{:+.1f}"), _f(r["dlumo_mEh"], "{:+.1f}"), _f(r["dmu_D"], "{:+.3f}"),
             _f(r["dalpha_pct"]), _f(r["dr2_pct"]), _f(r["dABC_pct"], "{:.2f}"),
             _f(r["dzpve_pct"])] for r in rows]
    lines = [common.markdown_table(head, body), ""]

    def stat(key):
        v = np.array([r[key] for r in rows if r.get(key) is not None and r["same_conformer"]],
                     float)
        v = v[np.isfinite(v)]
        if not len(v):
            return "-"
        return f"mean {v.mean():+.2f}, MAD {np.abs(v).mean():.2f}, max |.| {np.abs(v).max():.2f} (n={len(v)})"
    for key, what in (*((f"dE_{v[0]}_mEh", f"energy {v[0]} (mEh)") for v in VARIANTS),
                      ("dalpha_pct", "alpha (%)"),
                      ("dzpve_pct", "ZPVE (%)"), ("dhomo_mEh", "HOMO (mEh)"),
                      ("dlumo_mEh", "LUMO (mEh)"), ("dmu_D", "dipole (D)"), ("dr2_pct", "<R2> (%)"),
                      ("dABC_pct", "max |dA,B,C| (%)")):
        lines.append(f"- {what}: {stat(key)}")
    m = data.get("machine") or {}
    dates = sorted(x.get("date", "") for x in data["molecules"].values())
    other = [r["mol_id"] for r in rows if not r["same_conformer"]]
    lines.append(f"- statistics over the {len(rows) - len(other)} molecules optimised into QM9's "
                 f"conformer (A, B, C within {OTHER_CONFORMER_PCT:g} %); another conformer: "
                 f"{', '.join(other) or 'none'} (the MMFF/xTB start found another minimum)")
    lines.append("")
    lines.append(f"Machine: {common.machine_line(m) if m else '?'}; measured {dates[0][:10]}"
                 f" to {dates[-1][:10]}; differences are hessflow minus QM9 (energy: QM9's U0 - ZPVE).")
    return "\n".join(lines)


def doc_section(data: dict) -> str:
    return ("### QM9's numbers at the default level (`python -m benchmarks.bench_qm9_level`)\n\n"
            "B3LYP/6-31G(2df,p) (Gaussian's definition, hessflow's shipped file), PySCF grid "
            "level 4, geometry optimised (GAU) in Gaussian's 6D 7F shells from a GFN2-xTB start; "
            "the dE columns are single points there: 6d7f (the default), 5d7f and 6d10f in the "
            "same basis, and BSE's/PySCF's 6-31G(2df,p) (\"bse\", other d exponents on Be-Ne) "
            "with pure shells (hessflow's default before) and with 6D 7F. dE and dHOMO/dLUMO in "
            "mEh; the other columns from the default.\n\n" + report(data))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", action="store_true", help="print the saved table only")
    ap.add_argument("--doc", action="store_true", help="write the table into docs/benchmarks.md")
    ap.add_argument("--only", help="comma-separated mol_ids")
    ap.add_argument("--redo", action="store_true")
    ap.add_argument("--opt-shells", default="6d7f", choices=SHELLS)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--hessian-max-heavy", type=int, default=4)
    a = ap.parse_args(argv)
    if not a.report:
        run(a)
    return common.report_saved(NAME, {"molecules": {}}, report, doc_section, a.doc)


if __name__ == "__main__":
    sys.exit(main())
