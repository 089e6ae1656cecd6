"""Fewer DFT optimisation steps (issue #14 item 1): GFN2-xTB pre-optimisation and initial Hessian.

Each QM9-subset molecule (SMILES from ``../shared/data/qm9_subset.csv``, RDKit/MMFF start
geometry as a workflow makes it) is optimised at one DFT level along each *route*:

``today``     ``preopt: none``, ``opt_initial_hessian: guess`` — geomeTRIC from the MMFF geometry
              with its model Hessian (the route before issue 14)
``xtb``       ``preopt: xtb``, ``opt_initial_hessian: guess`` — from the GFN2-xTB minimum
``xtb+hess``  ``preopt: xtb``, ``opt_initial_hessian: xtb`` — from there with the GFN2-xTB
              Hessian (the default)

and, with ``--freq``, the Hessian at each route's minimum. Per molecule and route: DFT gradient
steps (``opt_steps``), xTB steps, core-seconds of the optimisation (xTB included) and of the
frequencies, and against ``today``: |ΔE| (Hartree), the all-atom and heavy-atom RMSD of the two
minima after alignment (Kabsch, same atom order), the largest frequency difference (cm^-1) and
whether the imaginary-mode count (the label the record carries) differs. A route ends in
**another conformer** when the heavy-atom RMSD exceeds :data:`RMSD_CONFORMER_ANGSTROM` or |ΔE|
exceeds :data:`DE_CONFORMER_HARTREE` (a methyl rotated by 120° is the same conformer: hence the
heavy atoms). Everything runs in this process through :func:`hessflow.qm.tasks.run_task`, the
route a workflow takes. Results merge into ``benchmarks/results/preopt.json``::

    python -m benchmarks.bench_preopt --n 6 --heavy 3-5 --level '{"method": "hf", "basis": "6-31g"}' --threads 1
    python -m benchmarks.bench_preopt --n 20 --heavy 3-9 --freq            # the QM9 level
    python -m benchmarks.bench_preopt --report --doc
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from hessflow.qm import tasks
from hessflow.qm.engines import get_engine
from hessflow.qm.level import Level
from hessflow.units import BOHR_ANGSTROM

from . import common
from .qm_protocol import QM9_CSV, molecule, plain, run_stage, select_qm9

NAME = "preopt"
ROUTES = {"today": {"preopt": "none", "opt_initial_hessian": "guess"},
          "xtb": {"preopt": "xtb", "opt_initial_hessian": "guess"},
          "xtb+hess": {"preopt": "xtb", "opt_initial_hessian": "xtb"}}
RMSD_CONFORMER_ANGSTROM = 0.1
DE_CONFORMER_HARTREE = 1e-5


def kabsch_rmsd(a, b) -> float:
    """RMSD (same units as the input) of two (n, 3) geometries after optimal superposition."""
    a = np.asarray(a, float) - np.mean(a, axis=0)
    b = np.asarray(b, float) - np.mean(b, axis=0)
    if len(a) < 2:
        return 0.0
    u, s, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    s[-1] *= d
    e = max(float((a * a).sum() + (b * b).sum() - 2 * s.sum()), 0.0)
    return float(np.sqrt(e / len(a)))


def run_route(mol, engine, level: Level, freq: bool, label: str) -> dict:
    rec = {"status": "ok", "stages": {}}
    out = run_stage(rec, "opt", lambda: tasks.run_task("opt", mol, engine, level), label=label)
    if out is None:
        return rec
    rec.update(energy_hartree=float(out["energy_hartree"]),
               coords_opt_bohr=plain(out["coords_opt_bohr"]),
               opt_steps=int(out["_opt_steps"]), preopt=out.get("_preopt"),
               flags=out.get("_flags", []))
    if freq:
        g = mol.with_coords(np.asarray(out["coords_opt_bohr"]))
        f = run_stage(rec, "freq", lambda: tasks.run_task("freq", g, engine, level), label=label)
        if f is not None:
            rec.update(frequencies_cm1=plain(f["frequencies_cm1"]), n_imag=int(f["n_imag"]),
                       zpve_hartree=float(f["zpve_hartree"]), freq_flags=f.get("_flags", []))
            if "coords_opt_bohr" in f:   # re-optimised after an imaginary mode
                rec["coords_final_bohr"] = plain(f["coords_opt_bohr"])
    return rec


def compare(ref: dict, other: dict, numbers) -> dict:
    """``other`` route against ``today`` (both ok): energy, geometry, frequencies, labels."""
    if ref.get("status") != "ok" or other.get("status") != "ok":
        return {}
    a = np.asarray(ref.get("coords_final_bohr", ref["coords_opt_bohr"])) * BOHR_ANGSTROM
    b = np.asarray(other.get("coords_final_bohr", other["coords_opt_bohr"])) * BOHR_ANGSTROM
    heavy = np.asarray(numbers) > 1
    d = {"de_hartree": abs(other["energy_hartree"] - ref["energy_hartree"]),
         "rmsd_angstrom": kabsch_rmsd(a, b), "rmsd_heavy_angstrom": kabsch_rmsd(a[heavy], b[heavy])}
    if "frequencies_cm1" in ref and "frequencies_cm1" in other:
        d["freq_cm1"] = float(np.abs(np.subtract(other["frequencies_cm1"],
                                                 ref["frequencies_cm1"])).max())
        d["n_imag_differs"] = other["n_imag"] != ref["n_imag"]
        d["zpve_rel"] = abs(other["zpve_hartree"] / ref["zpve_hartree"] - 1)
    d["other_conformer"] = bool(d["rmsd_heavy_angstrom"] > RMSD_CONFORMER_ANGSTROM
                                or d["de_hartree"] > DE_CONFORMER_HARTREE)
    return d


def run(mols, level: Level, routes, freq: bool, redo: bool = False) -> dict:
    data = common.read_result(NAME) or {"benchmark": NAME, "runs": {}}
    tag = f"{level.method}/{level.basis}" + ("+freq" if freq else "")
    entry = data["runs"].setdefault(tag, {"level": level.key_dict(), "threads": level.threads,
                                          "molecules": {}})
    entry.update(machine=common.machine_info(), date=common.now_iso(),
                 code=common.code_version("hessflow/qm/engines/xtb_preopt.py",
                                          "hessflow/qm/engines/pyscf_engine.py"))
    engine = get_engine("pyscf")
    for mol_id, smiles, heavy, _row in mols:
        m = molecule(mol_id, smiles)
        res = entry["molecules"].setdefault(mol_id, {"smiles": smiles, "heavy_atoms": heavy,
                                                     "n_atoms": m.natoms, "routes": {}})
        for route in routes:
            if route in res["routes"] and not redo and res["routes"][route].get("status") == "ok":
                continue
            lvl = level.replace(**ROUTES[route])
            res["routes"][route] = run_route(m, engine, lvl, freq, f"{mol_id} {route}")
            common.write_result(NAME, data)
        for route in routes:
            if route != "today" and "today" in res["routes"]:
                res["routes"][route]["vs_today"] = compare(res["routes"]["today"],
                                                           res["routes"][route], m.numbers)
        common.write_result(NAME, data)
    return data


def _cpu(r, stage):
    return (r.get("stages", {}).get(stage) or {}).get("cpu_seconds")


def rows(entry: dict):
    out = []
    for mol_id, res in entry["molecules"].items():
        for route, r in res["routes"].items():
            v = r.get("vs_today", {})
            pre = r.get("preopt") or {}
            out.append([
                mol_id, res["smiles"], res["heavy_atoms"], route,
                r.get("opt_steps", r.get("status")), pre.get("xtb_steps", "-"),
                common.fmt_s(_cpu(r, "opt")), common.fmt_s(_cpu(r, "freq")),
                f"{v['de_hartree']:.1e}" if v else "-",
                f"{v['rmsd_heavy_angstrom']:.3f}" if v else "-",
                f"{v['freq_cm1']:.2f}" if "freq_cm1" in v else "-",
                ("yes" if v.get("n_imag_differs") else "no") if "n_imag_differs" in v else "-",
                ("**yes**" if v.get("other_conformer") else "no") if v else "-",
                ",".join(r.get("flags", [])) or "-"])
    return out


def totals(entry: dict) -> list:
    """Per route over the molecules that every route of the run finished (a molecule missing
    a route, e.g. a run stopped half-way, is left out): DFT steps, core-seconds of the
    optimisation, and the ratio to today's."""
    routes = sorted({r for res in entry["molecules"].values() for r in res["routes"]},
                    key=list(ROUTES).index)
    mols = [res for res in entry["molecules"].values()
            if all(res["routes"].get(r, {}).get("status") == "ok" for r in routes)]
    base = None
    out = []
    for route in routes:
        steps = sum(res["routes"][route]["opt_steps"] for res in mols if route in res["routes"])
        cpu = sum(_cpu(res["routes"][route], "opt") or 0 for res in mols if route in res["routes"])
        conf = sum(bool(res["routes"][route].get("vs_today", {}).get("other_conformer"))
                   for res in mols if route in res["routes"])
        if route == "today":
            base = (steps, cpu)
        out.append([route, len(mols), steps, f"{cpu:.1f}",
                    f"{base[0] / steps:.2f}" if base and steps else "-",
                    f"{base[1] / cpu:.2f}" if base and cpu else "-", conf])
    return out


def loads(entry):
    vals = [s.get(k) for res in entry["molecules"].values() for r in res["routes"].values()
            for s in r.get("stages", {}).values() for k in ("load1_before", "load1_after")]
    return common.load_range(vals)


def report(data: dict) -> str:
    lines = []
    for tag, entry in data.get("runs", {}).items():
        lines += [f"## {tag} (threads {entry.get('threads')}), {entry.get('date')}, "
                  f"{common.machine_line(entry['machine'])}, load1 {loads(entry)}", "",
                  common.markdown_table(["route", "molecules", "DFT steps", "opt core-s",
                                         "steps ratio (today/route)", "core-s ratio",
                                         "other conformer"], totals(entry)), "",
                  common.markdown_table(["mol", "SMILES", "heavy", "route", "DFT steps",
                                         "xTB steps", "opt core-s", "freq core-s", "|ΔE| (Eh)",
                                         "heavy RMSD (Å)", "max |Δν| (cm⁻¹)", "n_imag differs",
                                         "other conformer", "flags"], rows(entry)), ""]
    return "\n".join(lines) or "no results yet"


def doc_section(data: dict) -> str:
    head = ["## DFT optimisation from a GFN2-xTB start (`benchmarks/bench_preopt.py`)", "",
            "Issue #14 item 1. Each QM9-subset molecule (MMFF start geometry) is optimised "
            "(geomeTRIC, GAU criteria, analytic gradients, PySCF) along three routes: `today` "
            "(`preopt: none`, `opt_initial_hessian: guess`: the route before), `xtb` (from the "
            "GFN2-xTB minimum, model Hessian) and `xtb+hess` (from the GFN2-xTB minimum with "
            "the GFN2-xTB Hessian there: the default). DFT steps = DFT gradients geomeTRIC "
            "asked for; opt core-s = user+system CPU seconds of the whole optimisation, xTB "
            "included. Against `today`: |ΔE| of the minima, heavy-atom RMSD after alignment, "
            "largest frequency difference and the imaginary-mode count (with `--freq`). "
            f"'Other conformer': heavy-atom RMSD > {RMSD_CONFORMER_ANGSTROM} Å or |ΔE| > "
            f"{DE_CONFORMER_HARTREE:g} Eh. Timings under a load above the core count are upper "
            "bounds (the machine is shared).", ""]
    return "\n".join(head) + "\n" + report(data)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20, help="molecules (round-robin over heavy-atom counts)")
    ap.add_argument("--heavy", default="3-9", help="heavy-atom range, e.g. 3-5")
    ap.add_argument("--level", default="{}", help="JSON of Level settings (default: QM9's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--routes", default=",".join(ROUTES))
    ap.add_argument("--freq", action="store_true", help="also the Hessian at each minimum")
    ap.add_argument("--redo", action="store_true")
    ap.add_argument("--report", action="store_true", help="print the stored tables only")
    ap.add_argument("--doc", action="store_true", help="rewrite the preopt section of docs/benchmarks.md")
    a = ap.parse_args(argv)
    if not a.report:
        if not QM9_CSV.exists():
            print(f"bench_preopt: skipped: {QM9_CSV} not present")
            return 0
        lo, _, hi = a.heavy.partition("-")
        routes = [r.strip() for r in a.routes.split(",") if r.strip()]
        bad = [r for r in routes if r not in ROUTES]
        if bad or "today" not in routes:
            ap.error(f"--routes: need 'today' and only {', '.join(ROUTES)} (got {a.routes})")
        mols = select_qm9(a.n, int(lo), int(hi or lo))
        level = Level.from_mapping({**json.loads(a.level), "threads": a.threads})
        run(mols, level, routes, a.freq, a.redo)
    return common.report_saved(NAME, {"benchmark": NAME, "runs": {}}, report, doc_section, a.doc)


if __name__ == "__main__":
    sys.exit(main())
