"""The QM9 protocol on GPU (GPU4PySCF) and on CPU (PySCF): agreement and timings per stage.

For each molecule (default water, methane, ethanol: RDKit/MMFF start geometries) and each side
(``cpu``: :class:`~hessflow.qm.engines.pyscf_engine.PyscfEngine`, ``cuda``:
:class:`~hessflow.qm.engines.gpu4pyscf_engine.Gpu4pyscfEngine`) it runs the protocol at
B3LYP/6-31G(2df,p), grid 4 (hessflow's QM9 level), timing each stage: geometry optimisation
(geomeTRIC, GAU), analytic Hessian, analytic alpha, finite-field beta. The GPU side then
repeats the single point, Hessian and alpha at the CPU side's optimised geometry, so that the
agreement is the engines' own, not the optimiser's:

    energy <= 1e-6 Eh, every harmonic frequency <= 1 cm^-1, alpha <= 0.1 % (largest component
    difference over the largest component), at the same geometry;

the differences between the two full routes (each at its own optimised geometry) and of beta are
reported beside them. Results go to ``benchmarks/results/gpu_check.json`` (another basis:
``gpu_check_<basis>.json``); ``--doc`` also rewrites the ``gpu_check`` section of docs/gpu.md.
Exit status: 0 all checks pass, 1 a check failed or a stage failed, 2 a requested side could not
run (no usable GPU: the reason is printed and recorded).

    python -m benchmarks.gpu_check                          # both sides, QM9 level
    python -m benchmarks.gpu_check --sides cpu --basis sto-3g --molecules water   # plumbing
    HESSFLOW_GPU_CHECK_BASIS=sto-3g python -m benchmarks.gpu_check --sides cpu

Run it through ``benchmarks/gpu_check.sh`` on a GPU machine (it installs the ``[gpu]`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hessflow import __version__
from hessflow.qm.molecules.conformers import from_smiles
from hessflow.qm.engines.gpu4pyscf_engine import Gpu4pyscfEngine, cuda_unavailable_reason
from hessflow.qm.engines.pyscf_engine import PyscfEngine
from hessflow.qm.harmonic import Harmonic
from hessflow.qm.level import Level

from . import common
from .qm_protocol import STAGES, differences, protocol, run_stage, short

NAME = "gpu_check"
DOC = common.ROOT / "docs" / "gpu.md"
MOLECULES = {"water": "O", "methane": "C", "ethanol": "CCO"}
QM9_BASIS = "6-31g(2df,p)"
SIDES = ("cpu", "cuda")
TOL = {"energy_hartree": 1e-6, "freq_cm1": 1.0, "alpha_rel": 1e-3}


def gpu_info() -> dict:
    """nvidia-smi's view of the GPUs (name, driver, memory), or why there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"gpus": [], "why_none": short(exc)}
    gpus = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    return {"gpus": gpus, "why_none": None if gpus else (out.stderr.strip() or "no GPU listed")}


def versions(engine) -> dict:
    v = {"hessflow": __version__, "engine": engine.name, "engine_version": engine.version()}
    if isinstance(engine, Gpu4pyscfEngine):
        import cupy
        v["cupy"] = cupy.__version__
        v["cuda_runtime"] = int(cupy.cuda.runtime.runtimeGetVersion())
    return v


def at_geometry(engine, mol, coords_bohr, level: Level, log=print) -> dict:
    """Single point, Hessian and alpha of ``mol`` at ``coords_bohr`` (the other side's minimum)."""
    rec = {"status": "ok", "stages": {}}
    geom = mol.with_coords(np.asarray(coords_bohr, float))
    label = f"cuda {mol.name} @cpu-geom"
    sp = run_stage(rec, "single_point", lambda: engine.single_point(geom, level), log, label)
    if sp is not None:
        rec["energy_hartree"] = float(sp.energy_hartree)
    h = run_stage(rec, "freq", lambda: engine.hessian(geom, level), log, label)
    if h is not None:
        rec["frequencies_cm1"] = Harmonic(geom.masses_amu, geom.coords_bohr, h).frequencies_cm1.tolist()
    a = run_stage(rec, "polar", lambda: engine.polarizability(geom, level), log, label)
    if a is not None:
        rec["alpha_bohr3"] = np.asarray(a).tolist()
    return rec


def verdict(diff: dict) -> dict:
    """{quantity: True/False} against :data:`TOL` for the quantities present in ``diff``."""
    return {k: bool(diff[k] <= tol) for k, tol in TOL.items() if k in diff}


def slug(basis: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", basis.lower()).strip("-")


def result_name(basis: str) -> str:
    return NAME if basis.lower() == QM9_BASIS else f"{NAME}_{slug(basis)}"


def warm_up(engine, level: Level, log=print) -> dict:
    """One small SCF, timed on its own: CUDA context, memory pool and kernel loading."""
    water = from_smiles("O", "water")
    with common.timed() as t:
        engine.single_point(water, level.replace(basis="sto-3g"))
    log(f"  cuda warm-up (water/sto-3g SCF) {common.fmt_s(t['seconds'])} s")
    return dict(t)


def make_engine(side: str):
    """The engine of a side, or the one-line reason it cannot run here."""
    if side == "cpu":
        return PyscfEngine(), None
    why = cuda_unavailable_reason()
    return (None, why) if why else (Gpu4pyscfEngine(), None)


def run(molecules, sides, basis: str, grid, threads: int, budget_s: float, log=print,
        engine_of=make_engine) -> dict:
    """The check (see the module docstring); ``engine_of(side) -> (engine, why_not)``."""
    # Cartesian d and f: the shells both engines run (the GPU engine has no 6D 7F yet)
    level = Level(basis=basis, grid=grid, threads=threads, shells="6d10f")
    t_start = time.perf_counter()
    data = {"benchmark": NAME, "date": common.now_iso(), "machine": common.machine_info(),
            "gpu": gpu_info(), "level": level.key_dict(), "threads": threads,
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")},
            "code": common.code_version("hessflow/qm/engines/gpu4pyscf_engine.py",
                                        "hessflow/qm/engines/pyscf_engine.py"),
            "tolerances": TOL, "sides": {}, "molecules": {}}
    engines = {}
    for side in sides:
        engine, why = engine_of(side)
        data["sides"][side] = {"status": f"not run: {why}" if why else "ok"}
        if why:
            log(f"  {side}: not run: {why}")
            continue
        engines[side] = engine
        if side == "cuda":
            data["sides"][side]["warm_up"] = warm_up(engines[side], level, log)
    for name in molecules:
        entry = data["molecules"].setdefault(name, {"smiles": MOLECULES[name]})
        mol = from_smiles(MOLECULES[name], name)
        entry["n_atoms"] = mol.natoms
        for side, engine in engines.items():
            if time.perf_counter() - t_start > budget_s:
                entry[side] = {"status": f"skipped: time budget of {budget_s:.0f} s spent",
                               "stages": {}}
                log(f"  {side} {name}: {entry[side]['status']}")
                continue
            entry[side] = protocol(engine, mol, level, log=log, label=f"{side} {name}")
            entry[side].update(side=side, versions=versions(engine))
        cpu, gpu = entry.get("cpu"), entry.get("cuda")
        if cpu and gpu and "coords_opt_bohr" in cpu and "cuda" in engines:
            same = at_geometry(engines["cuda"], mol, cpu["coords_opt_bohr"], level, log)
            entry["cuda_at_cpu_geometry"] = same
            entry["diff_same_geometry"] = differences(cpu, same)
            entry["diff_routes"] = differences(cpu, gpu)
            entry["pass"] = verdict(entry["diff_same_geometry"])
    data["wall_s"] = time.perf_counter() - t_start
    return data


# -- report ----------------------------------------------------------------------------------
def _stage_cell(st: dict | None, steps=None) -> str:
    if not st:
        return ""
    if st.get("status") != "ok":
        return st.get("status", "")[:40]
    return common.fmt_s(st["seconds"]) + (f" ({steps})" if steps is not None else "")


def tables(data: dict) -> str:
    """Timings (one row per molecule and side, GPU speed-up rows) and the agreement table."""
    rows, agree = [], []
    for name, e in data["molecules"].items():
        for side in SIDES:
            if side not in data["sides"]:
                continue
            r = e.get(side)
            if r is None:
                rows.append([name, side, data["sides"][side]["status"], "", "", "", ""])
                continue
            st = r.get("stages", {})
            tot = sum(s.get("seconds") or 0 for s in st.values() if s.get("status") == "ok")
            rows.append([f"{name} ({e['n_atoms']})", side,
                         _stage_cell(st.get("opt"), r.get("n_opt_steps")) or r.get("status", ""),
                         _stage_cell(st.get("freq")), _stage_cell(st.get("polar")),
                         _stage_cell(st.get("hyperpolar")), common.fmt_s(tot) if st else ""])
        c, g = e.get("cpu"), e.get("cuda")
        if c and g and c.get("stages") and g.get("stages"):
            sp = []
            for stage in STAGES:
                a, b = c["stages"].get(stage, {}), g["stages"].get(stage, {})
                ok = a.get("status") == "ok" and b.get("status") == "ok" and b.get("seconds")
                sp.append(f"{a['seconds'] / b['seconds']:.1f}x" if ok else "")
            rows.append([name, "speed-up", *sp, ""])
        d = e.get("diff_same_geometry")
        if d:
            p = e.get("pass", {})
            route = e.get("diff_routes", {})
            agree.append([name, f"{d.get('energy_hartree', float('nan')):.1e}",
                          f"{d.get('freq_cm1', float('nan')):.3f}",
                          f"{100 * d.get('alpha_rel', float('nan')):.4f}",
                          f"{route.get('energy_hartree', float('nan')):.1e}",
                          f"{route.get('freq_cm1', float('nan')):.3f}",
                          f"{100 * route.get('beta_rel', float('nan')):.3f}",
                          "pass" if p and all(p.values()) else "FAIL"])
    out = common.markdown_table(["molecule (atoms)", "side", "opt s (steps)", "freq s", "polar s",
                                 "hyperpolar s", "total s"], rows)
    if agree:
        out += "\n\nAgreement, GPU against CPU (same geometry: the CPU minimum; routes: each "
        out += "side at its own minimum):\n\n" + common.markdown_table(
            ["molecule", "|ΔE| Eh", "max |Δν| cm^-1", "Δα %", "routes |ΔE| Eh",
             "routes max |Δν| cm^-1", "routes Δβ %", "check"], agree)
    return out


def doc_section(data: dict) -> str:
    m, g = data["machine"], data["gpu"]
    gpus = ", ".join(g["gpus"]) or f"none ({g['why_none']})"
    sides = "; ".join(f"{k}: {v['status']}" for k, v in data["sides"].items())
    return (f"### Measured by `benchmarks/gpu_check.sh` ({data['date'][:16].replace('T', ' ')} UTC)\n\n"
            f"Machine: {common.machine_line(m)}; GPU: {gpus}; CPU threads {data['threads']}; "
            f"level {data['level']['method']}/{data['level']['basis']}, grid "
            f"{data['level']['grid']}. Sides: {sides}. Wall seconds per stage (GPU: after a "
            f"separate warm-up SCF).\n\n{tables(data)}\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--molecules", default="water,methane,ethanol",
                    help=f"comma-separated, of {', '.join(MOLECULES)}")
    ap.add_argument("--sides", default="cpu,cuda", help="cpu, cuda or both (default)")
    ap.add_argument("--basis", default=os.environ.get("HESSFLOW_GPU_CHECK_BASIS", QM9_BASIS),
                    help="default $HESSFLOW_GPU_CHECK_BASIS or 6-31g(2df,p) (QM9's)")
    ap.add_argument("--grid", default=4, type=int, help="DFT grid level (default 4, hessflow's)")
    ap.add_argument("--threads", default=common.nproc(), type=int,
                    help="CPU threads per side (default: all cores of this process)")
    ap.add_argument("--budget-s", default=float(os.environ.get("HESSFLOW_GPU_CHECK_BUDGET_S", 420)),
                    type=float, help="start no molecule/side after this many seconds (default 420)")
    ap.add_argument("--out", default=None, help="result JSON (default benchmarks/results/gpu_check*.json)")
    ap.add_argument("--doc", action="store_true", help="rewrite the gpu_check section of docs/gpu.md")
    a = ap.parse_args(argv)
    mols = [m.strip() for m in a.molecules.split(",") if m.strip()]
    sides = [s.strip() for s in a.sides.split(",") if s.strip()]
    bad = [m for m in mols if m not in MOLECULES] + [s for s in sides if s not in SIDES]
    if bad or not mols or not sides:
        ap.error(f"unknown molecule/side: {', '.join(bad) or 'none given'}")
    print(f"gpu_check: {', '.join(mols)} on {', '.join(sides)}, b3lyp/{a.basis}, grid {a.grid}, "
          f"{a.threads} CPU threads")
    data = run(mols, sides, a.basis, a.grid, a.threads, a.budget_s)
    if a.out:
        path = Path(a.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
    else:
        path = common.write_result(result_name(a.basis), data)
    print()
    print(tables(data))
    print(f"\nwrote {path} ({data['wall_s']:.0f} s)")
    if a.doc and a.basis.lower() != QM9_BASIS:
        print(f"not updating {DOC}: basis {a.basis} is not the QM9 protocol's ({QM9_BASIS})")
    elif a.doc:
        common.update_doc(NAME, doc_section(data), doc=DOC)
        print(f"updated {DOC}")
    if any(v["status"] != "ok" for v in data["sides"].values()):
        return 2
    failed = [n for n, e in data["molecules"].items()
              if any(r.get("status") != "ok" for r in (e.get(s) for s in sides) if r)
              or (e.get("pass") and not all(e["pass"].values()))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
