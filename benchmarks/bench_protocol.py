"""The cost of the QM9 protocol (issue #14 item 5): core-seconds per molecule and per stage, and
how each stage scales with the number of basis functions.

For the 20 QM9-subset molecules of 3-9 heavy atoms (:func:`benchmarks.qm_protocol.select_qm9`:
the same set every run) it runs opt, freq, polar, hyperpolar through the workflow's own route
(:func:`hessflow.qm.tasks.run_task`) from the RDKit/MMFF geometry, with one engine, and
records per stage wall and CPU (core-)seconds, the load before and after, the basis size, and
the ZPVE and alpha next to QM9's. Entries are keyed ``label|engine|basis|mol_id`` and merge into
``benchmarks/results/protocol.json``, so runs accumulate: one ``--label before`` run on the code
of today, one ``--label after`` with this issue's defaults, psi4 on a subset (``--first 5``)::

    python -m benchmarks.bench_protocol --label before --threads 1 --heavy-min 2 --ids gdb_7 \
        --level '{"preopt": "none", "opt_initial_hessian": "guess", "response_grid": "scf"}'
    python -m benchmarks.bench_protocol --label after --threads 1 --heavy-min 2 --ids gdb_7
    python -m benchmarks.bench_protocol --label before --engine psi4 --first 5 --threads 2
    python -m benchmarks.bench_protocol --report --doc        # tables only (docs/benchmarks.md)

The report fits log(core-s) = p log(N_bf) + c per label, engine and stage (the exponent p with
its standard error) and compares labels on the molecules both have.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from hessflow import __version__
from hessflow.qm.engines import get_engine
from hessflow.qm.level import Level

from . import common
from .qm_protocol import STAGES, differences, fit_exponent, molecule, pick, protocol, short

NAME = "protocol"
QM9_ZPVE_KEY, QM9_ALPHA_KEY = "zpve", "alpha"   # QM9 CSV columns: Hartree, Bohr^3


def entry_key(label: str, engine: str, basis: str, mol_id: str) -> str:
    return f"{label}|{engine}|{basis}|{mol_id}"


def run(label: str, engine_name: str, mols, level: Level, budget_s: float, redo: bool = False,
        save: bool = True, log=print, stages=STAGES) -> dict:
    """Run the protocol on ``mols`` [(mol_id, smiles, heavy, qm9 row)]; merge each molecule's
    entry into the result file as soon as it is done (a stopped run keeps what it finished)."""
    t0 = time.perf_counter()
    data = (common.read_result(NAME) if save else None) or {"benchmark": NAME, "entries": {}}
    engine = get_engine(engine_name)
    for mol_id, smiles, heavy, row in mols:
        key = entry_key(label, engine_name, level.basis, mol_id)
        old = data["entries"].get(key)
        if old and old.get("status") == "ok" and not redo:
            log(f"  {key}: done before, kept")
            continue
        if time.perf_counter() - t0 > budget_s:
            log(f"  {key}: not started, time budget of {budget_s:.0f} s spent")
            break
        e = {"label": label, "engine": engine_name, "engine_version": engine.version(),
             "mol_id": mol_id, "smiles": smiles, "heavy_atoms": heavy, "level": level.key_dict(),
             "threads": level.threads, "date": common.now_iso(), "machine": common.machine_info(),
             "hessflow_version": __version__, "code": common.code_version("hessflow/qm/tasks.py", "hessflow/qm/fallback.py"),
             "qm9": {"zpve_hartree": float(row[QM9_ZPVE_KEY]),
                     "alpha_bohr3": float(row[QM9_ALPHA_KEY])}}
        try:
            mol = molecule(mol_id, smiles)
            e["n_atoms"] = mol.natoms
            e.update(protocol(engine, mol, level, stages=stages, log=log,
                              label=f"{label} {engine_name} {mol_id}"))
        except Exception as exc:  # a molecule that cannot even start is a result too
            e.update(status=f"failed: {short(exc)}", stages={})
        if save:  # merge into what is on disk now (another run may have added entries)
            data = common.read_result(NAME) or {"benchmark": NAME, "entries": {}}
        data["entries"][key] = e
        data["updated"] = common.now_iso()
        if save:
            common.write_result(NAME, data)
    return data


# -- report ----------------------------------------------------------------------------------
def _basis(e) -> str:
    return "-" if e["engine"] == "xtb" else e["level"]["basis"]


def _groups(entries):
    out: dict = {}
    for e in entries:
        out.setdefault((e["label"], e["engine"], _basis(e)), []).append(e)
    return out


def _cs(e, stage) -> float | None:
    st = e.get("stages", {}).get(stage, {})
    return st.get("cpu_seconds") if st.get("status") == "ok" else None


def report(data: dict) -> str:
    entries = sorted(data.get("entries", {}).values(),
                     key=lambda e: (e["label"], e["engine"], e.get("n_basis") or 0))
    ok = [e for e in entries if e.get("status") == "ok"]
    summary, scaling = [], []
    for (label, eng, basis), es in _groups(ok).items():
        loads = [v for e in es for s in e["stages"].values()
                 for v in (s.get("load1_before"), s.get("load1_after")) if v is not None]
        mach = sorted({common.machine_line(e["machine"]) for e in es})
        per_stage = [np.mean(v) if v else None  # a stage no molecule ran: "-", not 0
                     for v in ([_cs(e, s) for e in es if _cs(e, s) is not None] for s in STAGES)]
        zp = [abs(e["zpve_hartree"] / e["qm9"]["zpve_hartree"] - 1) for e in es if "zpve_hartree" in e]
        al = [abs(e["alpha_iso_bohr3"] / e["qm9"]["alpha_bohr3"] - 1) for e in es if "alpha_iso_bohr3" in e]
        summary.append([label, eng, basis, len(es), es[0].get("threads") or "all",
                        *(common.fmt_s(x) for x in per_stage),
                        common.fmt_s(np.mean([e["total_cpu_s"] for e in es])),
                        f"{100 * np.mean(zp):.2f}" if zp else "-",
                        f"{100 * np.mean(al):.2f}" if al else "-",
                        common.load_range(loads), "; ".join(mach)])
        for s in STAGES:
            fit = fit_exponent([e.get("n_basis") for e in es], [_cs(e, s) for e in es])
            scaling.append([label, eng, basis, s, f"{fit['p']:.2f} ± {fit['p_stderr']:.2f}"
                            if fit else "-", fit["n"] if fit else len(es)])
    groups = _groups(ok)
    ratios = []
    keys = sorted(groups)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if a[1:] != b[1:]:
                continue
            ia = {e["mol_id"]: e for e in groups[a]}
            ib = {e["mol_id"]: e for e in groups[b]}
            common_ids = sorted(set(ia) & set(ib))
            if common_ids:
                # the stages both routes ran on each molecule (a route may have run fewer)
                both = {m: [s for s in STAGES if _cs(ia[m], s) is not None
                            and _cs(ib[m], s) is not None] for m in common_ids}
                ta = sum(_cs(ia[m], s) for m in common_ids for s in both[m])
                tb = sum(_cs(ib[m], s) for m in common_ids for s in both[m])
                shared = sorted({s for v in both.values() for s in v}, key=STAGES.index)
                ds = [differences(ia[m], ib[m]) for m in common_ids]
                worst = {k: max((d[k] for d in ds if k in d), default=None)
                         for k in ("freq_cm1", "zpve_rel", "alpha_rel", "beta_rel")}
                ratios.append([f"{a[0]} / {b[0]}", a[1], a[2], len(common_ids), "+".join(shared),
                               f"{ta / tb:.2f}" if tb else "-",
                               f"{worst['freq_cm1']:.2f}" if worst["freq_cm1"] is not None else "-",
                               *(f"{100 * worst[k]:.3f}" if worst[k] is not None else "-"
                                 for k in ("zpve_rel", "alpha_rel", "beta_rel"))])
    rows = []
    for e in entries:
        st = e.get("stages", {})
        cells = [common.fmt_s(_cs(e, s)) if _cs(e, s) is not None else
                 (st.get(s, {}).get("status", "-")[:30]) for s in STAGES]
        if "n_opt_steps" in e and _cs(e, "opt") is not None:
            cells[0] += f" ({e['n_opt_steps']})"
        loads = [v for s in st.values() for v in (s.get("load1_before"), s.get("load1_after"))
                 if v is not None]
        rows.append([e["label"], e["engine"], e["mol_id"], e.get("heavy_atoms", "?"),
                     e.get("n_basis") or "-", *cells,
                     common.fmt_s(e.get("total_cpu_s")) if e.get("status") == "ok" else e.get("status", "")[:40],
                     common.load_range(loads), e.get("date", "")[:16].replace("T", " ")])
    out = ["Mean core-seconds per molecule (CPU seconds of the process and its children, all "
           "threads), ZPVE and α_iso against QM9's (mean |relative difference|):", "",
           common.markdown_table(["label", "engine", "basis", "molecules", "threads",
                                  *(f"{s} core-s" for s in STAGES), "total core-s",
                                  "ZPVE vs QM9 %", "α vs QM9 %", "load1", "machine"], summary)]
    if ratios:
        out += ["", "Core-seconds ratio on the molecules both labels have, and the largest "
                "change between the two routes (each at its own minimum; α, β: largest component "
                "difference over the largest component):", "",
                common.markdown_table(["labels", "engine", "basis", "molecules", "stages",
                                       "core-s ratio",
                                       "max |Δν| cm^-1", "ΔZPVE %", "Δα %", "Δβ %"], ratios)]
    out += ["", "Scaling with the number of basis functions N (fit of log core-s = p log N + c):",
            "", common.markdown_table(["label", "engine", "basis", "stage", "p", "points"], scaling),
            "", "Per molecule (core-seconds; optimiser steps in brackets):", "",
            common.markdown_table(["label", "engine", "molecule", "heavy", "N_bf",
                                   *(f"{s}" for s in STAGES), "total core-s", "load1",
                                   "date (UTC)"], rows)]
    return "\n".join(out)


def doc_section(data: dict) -> str:
    return ("## Cost of the QM9 protocol (`benchmarks/bench_protocol.py`)\n\n"
            "The 20 QM9-subset molecules of 3-9 heavy atoms, opt → freq → polar → hyperpolar "
            "through the workflow's route from the RDKit/MMFF geometry.\n\n" + report(data) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--label", default="today", help="name of this route (before, after, ...)")
    ap.add_argument("--engine", default="pyscf")
    ap.add_argument("--n", type=int, default=20, help="molecules of the QM9 set (default 20)")
    ap.add_argument("--first", type=int, default=None, help="only the first K of the set")
    ap.add_argument("--ids", default=None, help="comma-separated mol_ids of the set to run")
    ap.add_argument("--heavy-min", type=int, default=3, help="smallest heavy-atom count of the "
                    "set (2 adds ethane, gdb_7)")
    ap.add_argument("--stages", default=",".join(STAGES), help="of opt,freq,polar,hyperpolar")
    ap.add_argument("--basis", default=None, help="default: the Level default, 6-31g(2df,p)")
    ap.add_argument("--level", default="{}", help="JSON of Level overrides, e.g. '{\"grid\": 3}'")
    ap.add_argument("--threads", type=int, default=0, help="threads per calculation (0: all)")
    ap.add_argument("--budget-s", type=float, default=float("inf"),
                    help="start no molecule after this many seconds")
    ap.add_argument("--redo", action="store_true", help="recompute entries already done")
    ap.add_argument("--report", action="store_true", help="print the tables of what is stored, run nothing")
    ap.add_argument("--doc", action="store_true", help="rewrite the protocol section of docs/benchmarks.md")
    a = ap.parse_args(argv)
    if not a.report:
        over = json.loads(a.level)
        if a.basis:
            over["basis"] = a.basis
        level = Level.from_mapping({**over, "threads": a.threads})
        run(a.label, a.engine, pick(a.n, a.ids, a.first, a.heavy_min), level, a.budget_s,
            redo=a.redo, stages=tuple(x for x in a.stages.split(",") if x))
    return common.report_saved(NAME, {"benchmark": NAME, "entries": {}}, report, doc_section, a.doc)


if __name__ == "__main__":
    sys.exit(main())
