"""What a setting of the Hessian and response stages costs and changes (issue #14 item 2).

At each molecule's minimum (optimised once with the baseline route, kept in the result file), it
runs freq, polar and hyperpolar under each *variant* and records core-seconds and wall seconds per
stage; the report gives, against the baseline variant, the change of every harmonic frequency
(largest |Δν|, cm^-1), of ZPVE, α and β (relative), and the core-seconds ratio. Variants:

``baseline``      the route before issue 14 (``response_grid: scf``: the SCF grid everywhere,
                  exact integrals)
``response-sg1``  ``Level.response_grid = "sg1"``: the CPHF/CPKS response (Hessian and α, hence
                  β) on the SG-1 (50, 194) pruned grid, as Gaussian 09 did for CPKS; the SCF
                  and the Hessian's explicit XC terms stay on the SCF grid
``response-N``    the response on grid level N (``response_grid = N``)
``hessian-sg1``   not a setting, a measure of the remaining lever: the Hessian's explicit XC
                  second-derivative terms on SG-1 as well
``df``            ``Level.density_fit = "def2-universal-jkfit"`` for SCF, Hessian and α
``threads-N``     the baseline with N threads per calculation (N = 1, 2, ...): core-seconds
                  against wall time, i.e. threads per task versus workers per node
``gpu``, ``gpu-sg1``  the GPU engine (CPHF on the SCF grid / on SG-1), where CUDA is usable

Results merge into ``benchmarks/results/settings.json``::

    python -m benchmarks.bench_settings --first 5 --variants baseline,response-sg1,df,threads-1,threads-2
    python -m benchmarks.bench_settings --report --doc
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np

from hessflow.qm.engines.gpu4pyscf_engine import Gpu4pyscfEngine, cuda_unavailable_reason
from hessflow.qm.engines.pyscf_engine import PyscfEngine
from hessflow.qm.engines.pyscf_response import build_grids, response_grids
from hessflow.qm.level import Level

from . import common
from .qm_protocol import differences, molecule, pick, protocol, short

NAME = "settings"
STAGES = ("freq", "polar", "hyperpolar")
DF_AUXBASIS = "def2-universal-jkfit"


class WholeHessianGridEngine(PyscfEngine):
    """Benchmark-local, to measure a lever that is not a setting: the Hessian's explicit XC
    second-derivative terms (``hessobj.grids``) on the response grid too, not only the CPKS."""

    def __init__(self, spec: str):
        super().__init__()
        self.spec = spec

    def hessian(self, mol, level):
        mf = self._scf(mol, level)
        hobj = mf.Hessian()
        hobj.grids = build_grids(mf.mol, self.spec)
        with response_grids(mf, self.spec):
            h = hobj.kernel()
        n = mol.natoms
        return np.asarray(h).transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)


def variant(name: str):
    """(engine, level overrides, why-not) of a variant name."""
    if name == "baseline":  # the route before: the response on the SCF grid
        return PyscfEngine(), {"response_grid": None}, None
    if name.startswith("response-"):  # Level.response_grid: the CPHF/CPKS grid
        return PyscfEngine(), {"response_grid": name.split("-", 1)[1]}, None
    if name.startswith("hessian-"):  # the Hessian's explicit XC terms too (not a setting)
        spec = name.split("-", 1)[1]
        return WholeHessianGridEngine(spec), {"response_grid": spec}, None
    if name == "df":  # Level.density_fit, alone
        return PyscfEngine(), {"density_fit": DF_AUXBASIS, "response_grid": None}, None
    if name.startswith("threads-"):
        return PyscfEngine(), {"threads": int(name.split("-", 1)[1]), "response_grid": None}, None
    if name in ("gpu", "gpu-sg1"):
        why = cuda_unavailable_reason()
        if why:
            return None, {}, why
        return Gpu4pyscfEngine(cphf_grid="sg1" if name == "gpu-sg1" else "scf"), {}, None
    raise SystemExit(f"bench_settings: unknown variant {name!r}")


def run(variants, mols, level: Level, save: bool = True, redo: bool = False, log=print,
        stages=STAGES) -> dict:
    data = (common.read_result(NAME) if save else None) or {"benchmark": NAME, "entries": {},
                                                            "geometries": {}}
    for mol_id, smiles, heavy, _ in mols:
        mol = molecule(mol_id, smiles)
        gkey = f"{mol_id}|{level.basis}"
        if gkey not in data["geometries"]:  # the baseline minimum, shared by every variant
            opt = protocol(PyscfEngine(), mol, level, stages=("opt",), log=log,
                           label=f"minimum {mol_id}")
            if opt["status"] != "ok":
                log(f"  {mol_id}: no minimum: {opt['stages']['opt']['status']}")
                continue
            data["geometries"][gkey] = {"coords_bohr": opt["coords_opt_bohr"],
                                        "energy_hartree": opt["energy_hartree"],
                                        "opt": opt["stages"]["opt"]}
        coords = data["geometries"][gkey]["coords_bohr"]
        for name in variants:
            key = f"{name}|{mol_id}|{level.basis}"
            if key in data["entries"] and data["entries"][key].get("status") == "ok" and not redo:
                continue
            engine, over, why = variant(name)
            e = {"variant": name, "mol_id": mol_id, "heavy_atoms": heavy, "basis": level.basis,
                 "date": common.now_iso(), "machine": common.machine_info()}
            if why:
                e.update(status=f"not run: {why}")
            else:
                lvl = level.replace(**over)
                e["threads"] = lvl.threads
                try:
                    e.update(protocol(engine, mol, lvl, stages=stages, log=log,
                                      label=f"{name} {mol_id}", start_coords_bohr=coords))
                except Exception as exc:  # noqa: BLE001 - recorded, the next variant runs
                    e.update(status=f"failed: {short(exc)}", stages={})
            if save:
                fresh = common.read_result(NAME)
                if fresh:
                    fresh.setdefault("geometries", {}).update(data["geometries"])
                    data = fresh
            data["entries"][key] = e
            if save:
                common.write_result(NAME, data)
    return data


def report(data: dict) -> str:
    entries = data.get("entries", {})
    rows = []
    for key, e in sorted(entries.items(), key=lambda kv: (kv[1]["mol_id"], kv[1]["variant"])):
        base = entries.get(f"baseline|{e['mol_id']}|{e['basis']}")
        if e.get("status") != "ok":
            rows.append([e["mol_id"], e["variant"], e.get("status", "")[:60], "", "", "", "", "",
                         "", ""])
            continue
        cs = [e["stages"].get(s, {}).get("cpu_seconds") for s in STAGES]
        d = differences(base, e) if base and base.get("status") == "ok" else {}
        both = [s for s in STAGES if e["stages"].get(s, {}).get("cpu_seconds") is not None
                and base and base.get("stages", {}).get(s, {}).get("cpu_seconds") is not None]
        tb = sum(base["stages"][s]["cpu_seconds"] for s in both) if both else 0
        ratio = sum(e["stages"][s]["cpu_seconds"] for s in both) / tb if d and tb else None
        loads = [v for s in e["stages"].values() for v in (s.get("load1_before"), s.get("load1_after"))
                 if v is not None]
        rows.append([e["mol_id"], e["variant"], *(common.fmt_s(c) for c in cs),
                     common.fmt_s(e["total_s"]), f"{ratio:.2f}" if ratio else "-",
                     f"{d['freq_cm1']:.2e}" if "freq_cm1" in d else "-",
                     *(f"{100 * d[k]:.1e}" if k in d else "-"
                       for k in ("zpve_rel", "alpha_rel", "beta_rel")),
                     common.load_range(loads)])
    return common.markdown_table(
        ["molecule", "variant", *(f"{s} core-s" for s in STAGES), "wall s", "core-s / baseline",
         "max |Δν| cm^-1", "ΔZPVE %", "Δα %", "Δβ %", "load1"], rows)


# -- threads per task versus workers per node -------------------------------------------------
def _packed_task(mol_id: str, smiles: str, coords, level_map: dict, stages) -> dict:
    """One worker's share (a separate process): ``stages`` of one molecule at ``coords``."""
    lvl = Level.from_mapping(level_map)
    rec = protocol(PyscfEngine(), molecule(mol_id, smiles), lvl, stages=stages,
                   log=lambda *a: None, start_coords_bohr=coords)
    return {"status": rec["status"], "cpu_s": rec["total_cpu_s"], "wall_s": rec["total_s"]}


def packing(mols, level: Level, cores: int, stages=("freq",), save: bool = True,
            log=print, data: dict | None = None) -> dict:
    """The same tasks (``stages`` of each molecule in ``mols``, at its stored baseline minimum)
    run as 1 worker x ``cores`` threads (one after the other) and as ``cores`` workers x 1
    thread (at once, one process each): elapsed wall seconds of the whole set and core-seconds
    (this process's and its workers'). Stored under ``packing`` in the result file."""
    import concurrent.futures as cf
    import multiprocessing
    import os
    import time
    data = data or (common.read_result(NAME) if save else None) or {
        "benchmark": NAME, "entries": {}, "geometries": {}}
    tasks = []
    for mol_id, smiles, _, _ in mols:
        g = data["geometries"].get(f"{mol_id}|{level.basis}")
        if g is None:
            raise SystemExit(f"bench_settings: no baseline minimum of {mol_id} stored; run the "
                             f"variants first")
        tasks.append((mol_id, smiles, g["coords_bohr"]))
    base = {k: v for k, v in dataclasses.asdict(level).items()}
    out = {"molecules": [t[0] for t in tasks], "stages": list(stages), "cores": cores,
           "date": common.now_iso(), "machine": common.machine_info()}
    for name, workers, threads in (("1 worker x %d threads" % cores, 1, cores),
                                   ("%d workers x 1 thread" % cores, cores, 1)):
        lm = {**base, "threads": threads}
        t0, c0, l0 = time.perf_counter(), os.times(), common.load1()
        with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            res = list(ex.map(_packed_task, *zip(*[(m, s, c, lm, stages) for m, s, c in tasks])))
        c1 = os.times()
        row = {"workers": workers, "threads": threads, "wall_s": time.perf_counter() - t0,
               "cpu_s": sum(r["cpu_s"] for r in res), "status": sorted({r["status"] for r in res}),
               "load1_before": l0, "load1_after": common.load1(),
               "children_cpu_s": c1.children_user - c0.children_user
               + c1.children_system - c0.children_system}
        out[name] = row
        log(f"  packing {name}: {row['wall_s']:.1f} s elapsed, {row['cpu_s']:.1f} core-s")
    if save:
        data = common.read_result(NAME) or data
        data.setdefault("packing", []).append(out)
        common.write_result(NAME, data)
    return out


def packing_report(data: dict) -> str:
    rows = []
    for run_ in data.get("packing", []):
        for name, r in run_.items():
            if isinstance(r, dict) and "workers" in r:
                rows.append([", ".join(run_["molecules"]), "+".join(run_["stages"]), name,
                             common.fmt_s(r["wall_s"]), common.fmt_s(r["cpu_s"]),
                             f"{3600 * len(run_['molecules']) / r['wall_s']:.0f}",
                             common.load_range([r["load1_before"], r["load1_after"]]),
                             run_["date"][:16]])
    if not rows:
        return ""
    return ("Threads per task versus workers per node (the same tasks, elapsed time of the "
            "set):\n\n" + common.markdown_table(
                ["molecules", "stages", "packing", "elapsed s", "core-s", "tasks / hour",
                 "load1", "date (UTC)"], rows) + "\n")


def doc_section(data: dict) -> str:
    return ("## Hessian and response settings (`benchmarks/bench_settings.py`)\n\n"
            "freq, polar, hyperpolar at each molecule's baseline minimum under each variant; Δ "
            "against the baseline variant (largest component difference over the largest "
            "component for α and β); core-s / baseline over the stages both ran.\n\n" + report(data) + "\n\n" + packing_report(data))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="baseline,response-sg1,df,threads-1,threads-2")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--first", type=int, default=5, help="the first K molecules of the QM9 set")
    ap.add_argument("--ids", default=None, help="comma-separated mol_ids of the set")
    ap.add_argument("--mols", default=None, help="molecules outside the QM9 set instead: "
                    "name=SMILES,name=SMILES (e.g. water=O,methanol=CO)")
    ap.add_argument("--stages", default=",".join(STAGES), help="of freq,polar,hyperpolar")
    ap.add_argument("--level", default="{}", help="JSON of Level overrides for every variant")
    ap.add_argument("--threads", type=int, default=0, help="threads (variants threads-N override)")
    ap.add_argument("--redo", action="store_true")
    ap.add_argument("--packing", type=int, default=0, metavar="CORES", help="instead of the "
                    "variants: the molecules' --stages as 1 worker x CORES threads and as CORES "
                    "workers x 1 thread")
    ap.add_argument("--report", action="store_true", help="print the table of what is stored")
    ap.add_argument("--doc", action="store_true", help="rewrite the settings section of docs/benchmarks.md")
    a = ap.parse_args(argv)
    if not a.report:
        level = Level.from_mapping({**json.loads(a.level), "threads": a.threads})
        mols = ([(n, smi, None, {}) for n, smi in (m.split("=", 1) for m in a.mols.split(","))]
                if a.mols else pick(a.n, a.ids, a.first))
        stages = tuple(x for x in a.stages.split(",") if x)
        if a.packing:
            packing(mols, level, a.packing, stages)
        else:
            run([v.strip() for v in a.variants.split(",") if v.strip()], mols, level,
                redo=a.redo, stages=stages)
    return common.report_saved(NAME, {"benchmark": NAME, "entries": {}, "geometries": {}}, report, doc_section, a.doc)


if __name__ == "__main__":
    sys.exit(main())
