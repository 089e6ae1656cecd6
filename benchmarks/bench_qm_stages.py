"""Wall time of each QM stage -- optimisation, Hessian, alpha, beta -- per engine, molecule, basis.

Method B3LYP with the default grid (xtb: GFN2-xTB, which has no basis: it runs once per molecule,
basis '-'). Each (engine, molecule, basis) runs on one fresh engine instance, in pipeline order:
optimise from the RDKit/MMFF geometry, then Hessian, alpha and beta at the optimised geometry --
so whatever an engine caches between stages (PySCF: the SCF at the optimised geometry, done at
the end of optimisation; xtb: the finite-field dipoles alpha shares with beta) is reused, as in a
real run. psi4 runs every stage in a fresh subprocess (SCF included).

Results merge into ``benchmarks/results/qm_stages.json`` per (engine, molecule, basis), so partial
runs accumulate:

    python -m benchmarks.bench_qm_stages --quick                    # water, 6-31G*, all engines
    python -m benchmarks.bench_qm_stages --engines pyscf,xtb --molecules water,glycine
    python -m benchmarks.bench_qm_stages --engines pyscf --molecules glycine --bases "6-31g(2df,p)"
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

import numpy as np

from hessflow import __version__
from hessflow.errors import EngineNotFound
from hessflow.qm.molecules.conformers import from_smiles
from hessflow.qm.engines import ENGINE_NAMES, get_engine
from hessflow.qm.level import Level

from . import common

NAME = "qm_stages"
MOLECULES = {"water": "O", "glycine": "NCC(=O)O"}
BASES = ("6-31g*", "6-31g(2df,p)")
STAGES = ("opt", "hessian", "alpha", "beta")
METHOD = "b3lyp"
XTB_METHOD = "gfn2-xtb"
NO_BASIS = "-"


def entry_key(engine: str, molecule: str, basis: str) -> str:
    return f"{engine}|{molecule}|{basis}"


def _short(exc: BaseException, limit: int = 300) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= limit else msg[:limit - 3] + "..."


def run_one(engine, engine_name: str, molecule: str, basis: str, threads: int = 0, log=print) -> dict:
    """Time the four stages for one (engine, molecule, basis) on ``engine``."""
    if engine_name == "xtb":
        level = Level(method=XTB_METHOD, threads=threads)
    else:
        level = Level(method=METHOD, basis=basis, threads=threads)
    mol = from_smiles(MOLECULES[molecule], molecule)
    e = {"engine": engine_name, "engine_version": engine.version(), "molecule": molecule,
         "smiles": MOLECULES[molecule], "n_atoms": mol.natoms, "basis": basis,
         "method": XTB_METHOD if engine_name == "xtb" else METHOD,
         "grid": None if engine_name == "xtb" else level.grid, "threads": threads,
         "engine_methods": dict(getattr(engine, "methods", {})),
         "date": common.now_iso(), "machine": common.machine_info(),
         "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                "MKL_NUM_THREADS")},
         "hessflow_version": __version__,
         "code": common.code_version(f"hessflow/qm/engines/{engine_name}_engine.py"),
         "status": "ok", "stages": {}}
    geom = None
    for stage in STAGES:
        if stage != "opt" and geom is None:
            e["stages"][stage] = {"status": "skipped: no optimised geometry"}
            continue
        rec: dict = {}
        try:
            with common.timed() as t:
                if stage == "opt":
                    res = engine.optimize(mol, level)
                elif stage == "hessian":
                    h = engine.hessian(geom, level)
                elif stage == "alpha":
                    a = engine.polarizability(geom, level)
                else:
                    b = engine.hyperpolarizability(geom, level)
            rec.update(status="ok", **dict(t))
            if stage == "opt":
                geom = mol.with_coords(res.coords_bohr)
                rec.update(n_steps=int(res.n_steps), energy_hartree=float(res.energy_hartree))
            elif stage == "hessian":
                rec["shape"] = list(np.shape(h))
                rec["max_abs_asymmetry"] = float(np.max(np.abs(h - np.asarray(h).T)))
            elif stage == "alpha":
                rec["alpha_iso_bohr3"] = float(np.trace(a) / 3)
            else:
                b = np.asarray(b)
                bvec = np.array([sum(b[i, j, j] + b[j, i, j] + b[j, j, i] for j in range(3)) / 3
                                 for i in range(3)])
                rec["beta_vec_norm_au"] = float(np.linalg.norm(bvec))
        except Exception as exc:  # a failed stage is a result, not a crash of the benchmark
            rec.update(status=f"failed: {_short(exc)}", seconds=t.get("seconds"),
                       load1_before=t.get("load1_before"), load1_after=t.get("load1_after"),
                       traceback=traceback.format_exc(limit=3))
            e["status"] = "partial"
        e["stages"][stage] = rec
        log(f"  {engine_name:5s} {molecule:8s} {basis:13s} {stage:8s} "
            f"{rec.get('status')[:60]:10s} {rec.get('seconds') or 0:8.1f} s  "
            f"load {rec.get('load1_before')} -> {rec.get('load1_after')}"
            + (f"  ({rec['n_steps']} steps)" if "n_steps" in rec else ""))
    e["total_s"] = sum(s.get("seconds") or 0 for s in e["stages"].values())
    e["total_cpu_s"] = sum(s.get("cpu_seconds") or 0 for s in e["stages"].values())
    return e


def plan(engines, molecules, bases):
    for eng in engines:
        for mol in molecules:
            if eng == "xtb":
                yield eng, mol, NO_BASIS
            else:
                for b in bases:
                    yield eng, mol, b


def run(engines, molecules, bases, threads: int = 0, save: bool = True, log=print) -> dict:
    data: dict = {"benchmark": NAME, "entries": {}}
    cache: dict = {}
    for eng, mol, basis in plan(engines, molecules, bases):
        key = entry_key(eng, mol, basis)
        if eng not in cache:
            try:
                get_engine(eng)
                cache[eng] = None
            except EngineNotFound as exc:
                cache[eng] = f"not available: {_short(exc)}"
        if cache[eng]:
            entry = {"engine": eng, "molecule": mol, "basis": basis, "status": cache[eng],
                     "date": common.now_iso(), "machine": common.machine_info(), "stages": {}}
            log(f"  {eng}: {cache[eng]}")
        else:
            entry = run_one(get_engine(eng), eng, mol, basis, threads, log)  # fresh instance
        if save:  # merge into what is on disk now (another run may have added entries)
            data = common.read_result(NAME) or {"benchmark": NAME, "entries": {}}
            data.setdefault("entries", {})
        data["entries"][key] = entry
        data["updated"] = common.now_iso()
        if save:
            common.write_result(NAME, data)
            common.update_doc(NAME, doc_section(data))
    return data


# -- docs ------------------------------------------------------------------------------------
def _sort_key(e):
    eng = ENGINE_NAMES.index(e["engine"]) if e["engine"] in ENGINE_NAMES else 99
    mol = list(MOLECULES).index(e["molecule"]) if e["molecule"] in MOLECULES else 99
    bas = BASES.index(e["basis"]) if e["basis"] in BASES else -1
    return eng, mol, bas


def _cell(st: dict | None) -> str:
    if not st:
        return "-"
    s = st.get("status", "")
    if s == "ok":
        return common.fmt_s(st["seconds"])
    if s.startswith("skipped"):
        return "skipped"
    return "failed" + (f" after {common.fmt_s(st['seconds'])}" if st.get("seconds") else "")


def doc_section(data: dict) -> str:
    entries = sorted(data.get("entries", {}).values(), key=_sort_key)
    rows, loads, machines, dates, notes = [], [], set(), [], []
    for e in entries:
        machines.add(common.machine_line(e["machine"]))
        dates.append(e.get("date", ""))
        st = e.get("stages", {})
        if not e.get("status", "").startswith(("ok", "partial")):
            rows.append([e["engine"], "-", e["molecule"], e["basis"], "-", e["status"], "", "", "",
                         "", "", "", ""])
            continue
        ls = [v for s in st.values() for v in (s.get("load1_before"), s.get("load1_after"))
              if v is not None]
        loads += ls
        opt = st.get("opt", {})
        opt_cell = _cell(opt) + (f" ({opt['n_steps']})" if "n_steps" in opt else "")
        thr = e.get("threads", 0)
        thr = f"all ({e['machine']['nproc']})" if not thr or thr <= 0 else str(thr)
        rows.append([e["engine"], e.get("engine_version", "?"), f"{e['molecule']} ({e['n_atoms']})",
                     e["basis"], thr, opt_cell, _cell(st.get("hessian")), _cell(st.get("alpha")),
                     _cell(st.get("beta")), common.fmt_s(e.get("total_s")),
                     common.fmt_s(e["total_cpu_s"]) if e.get("total_cpu_s") else "-",
                     common.load_range(ls), e.get("date", "")[:16].replace("T", " ")])
        for name, s in st.items():
            if s.get("status", "ok") not in ("ok",) and not s["status"].startswith("skipped"):
                notes.append(f"- {e['engine']} {e['molecule']} {e['basis']} {name}: {s['status']}")
    table = common.markdown_table(
        ["engine", "version", "molecule (atoms)", "basis", "threads", "opt s (steps)", "Hessian s", "α s",
         "β s", "total s", "total CPU s", "load1", "date (UTC)"], rows)
    methods = {}
    for e in entries:
        if e.get("engine_methods"):
            methods[e["engine"]] = e["engine_methods"]
    how = []
    for eng, m in methods.items():
        h = m.get("freq") or m.get("hessian") or "?"
        a = m.get("polar") or m.get("polarizability") or "?"
        b = m.get("hyperpolar") or m.get("hyperpolarizability") or "?"
        how.append(f"{eng}: Hessian {h}; α {a}; β {b}")
    mach = "; ".join(sorted(machines)) or "?"
    note_txt = ("\nFailures:\n" + "\n".join(notes) + "\n") if notes else ""
    if data.get("notes"):
        note_txt += "\nNotes:\n" + "\n".join(f"- {x}" for x in data["notes"]) + "\n"
    return f"""## QM stage wall times (`benchmarks/bench_qm_stages.py`)

What: wall-clock seconds of each stage of one molecule's computation, per engine, at B3LYP with
the default grid (xtb: GFN2-xTB, no basis), starting from the RDKit/MMFF geometry: geometry
optimisation (GAU criteria; number of optimiser steps in brackets), then Hessian, static α and
static β at that engine's own optimised geometry. Each row is one fresh engine instance running the
stages in pipeline order, so caches carry over as in a real run: PySCF's Hessian and α reuse the
SCF converged at the end of the optimisation; xtb's β reuses the finite-field dipoles of α; psi4
starts a fresh subprocess (SCF included) per stage. Threads: column threads ("all": the engine's
default, every core of the machine; a number: `--threads`). Step counts are the optimisers' own
(geomeTRIC for PySCF and xtb, optking for psi4).
How each quantity is computed: {" | ".join(how) or "?"}.

Machine: {mach}; runs between {min(dates)[:16] if dates else "?"} and
{max(dates)[:16] if dates else "?"} UTC. 1-minute load average over the timings:
{common.load_range(loads)} (column load1: before/after each stage of that row). With 2 cores, a
load above ~2 means other jobs competed for the cores, so those rows' wall times are **upper
bounds**. Column total CPU s (rows measured since it was added): user + system CPU seconds of the
benchmark process and of the engine subprocesses it waited for (psi4), which depends far less on
the load than the wall time does; with 1 thread it is what the row would take on an idle core.
Rows accumulate over partial runs (`--engines/--molecules/--bases`); missing combinations were not
run yet.

{table}
{note_txt}"""


def _split(v: str) -> list[str]:
    """Split a comma-separated list, keeping commas inside brackets: "6-31g*,6-31g(2df,p)"."""
    out, depth, cur = [], 0, ""
    for ch in v or "":
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [x.strip() for x in out if x.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default=",".join(ENGINE_NAMES),
                    help=f"comma-separated (default {','.join(ENGINE_NAMES)})")
    ap.add_argument("--molecules", default=",".join(MOLECULES),
                    help=f"comma-separated from {','.join(MOLECULES)} (default all)")
    ap.add_argument("--bases", default=",".join(BASES),
                    help=f"comma-separated from {','.join(BASES)} (default all; ignored by xtb)")
    ap.add_argument("--quick", action="store_true", help="water only, 6-31G* only")
    ap.add_argument("--threads", type=int, default=0, help="0 = the engine's default (all cores)")
    ap.add_argument("--no-save", action="store_true", help="print only; leave JSON and docs alone")
    ap.add_argument("--doc-only", action="store_true", help="regenerate the docs section only")
    a = ap.parse_args(argv)
    if a.doc_only:
        data = common.read_result(NAME) or {"entries": {}}
        common.update_doc(NAME, doc_section(data))
        return 0
    engines = [e.lower() for e in _split(a.engines)]
    molecules = [m.lower() for m in _split(a.molecules)]
    bases = [b.lower() for b in _split(a.bases)]
    if a.quick:
        molecules, bases = ["water"], ["6-31g*"]
    bad = ([m for m in molecules if m not in MOLECULES]
           + [e for e in engines if e not in ENGINE_NAMES] + [b for b in bases if b not in BASES])
    if bad:
        ap.error(f"unknown molecule/engine/basis: {', '.join(bad)} (molecules "
                 f"{','.join(MOLECULES)}; engines {','.join(ENGINE_NAMES)}; bases {','.join(BASES)})")
    print(f"machine: {common.machine_line(common.machine_info())}; load1 {common.load1():.2f}")
    run(engines, molecules, bases, a.threads, save=not a.no_save)
    if not a.no_save:
        print(f"wrote {common.result_path(NAME)} and {common.DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
