"""From a molecule to a store record: optimisation, Hessian + harmonic analysis, alpha, beta.

Each task is a function ``run_<task>(mol, engine, level) -> dict`` returning the record fields it
fills, so the workflow can run them as separate (parallel) apps; :func:`compute_record` chains them
for one molecule and keeps every finished part when a later task fails.
"""

from __future__ import annotations

import json
import platform
import time

import numpy as np

from .. import __version__
from ..errors import EngineError, HessflowError
from .record import empty_record, now_unix
from ..units import AU_DEBYE
from . import properties
from .engines.base import Engine
from .harmonic import Harmonic
from .level import Level
from .molecule import Molecule, content_key

TASKS = ("opt", "freq", "polar", "hyperpolar")


def parse_tasks(text) -> tuple[str, ...]:
    tasks = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text)]
    tasks = [t for t in tasks if t]
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise HessflowError(f"tasks: {','.join(bad) or 'none'} not among {','.join(TASKS)}")
    return tuple(t for t in TASKS if t in tasks)


def request_key(mol: Molecule, engine: Engine, level: Level, tasks) -> str:
    lvl = dict(engine.level_for_key(level))
    lvl["geometry"] = "optimized" if "opt" in tasks else "input"
    if "conformer" in mol.extra and mol.smiles:
        lvl["conformer"] = mol.extra["conformer"]
    return content_key(mol.structure_id(), mol.charge, mol.multiplicity, engine.name, lvl)


def failure_key(name: str, raw: str, engine: str, level: Level) -> str:
    """Key of a molecule that could not even be read (so its failure is recorded once)."""
    return content_key("unreadable:" + (raw or name), 0, 0, engine, level.key_dict())


def new_record(mol: Molecule, engine: Engine, level: Level, tasks) -> dict:
    rec = empty_record()
    rec.update(
        key=request_key(mol, engine, level, tasks), name=mol.name, smiles=mol.smiles,
        formula=mol.formula, status="failed", reason="not computed yet", engine=engine.name,
        method=engine.level_for_key(level).get("method", level.method),
        basis=engine.level_for_key(level).get("basis", ""),
        charge=mol.charge, multiplicity=mol.multiplicity, n_atoms=mol.natoms,
        numbers=mol.numbers, masses_amu=mol.masses_amu, coords_input_bohr=mol.coords_bohr,
        created_unix=now_unix(),
        provenance=json.dumps({
            "hessflow_version": __version__, "engine": engine.name,
            "engine_version": engine.version(), "level": level.key_dict(),
            "methods": engine.methods, "source": mol.source,
            "conformer": mol.extra.get("conformer"), "reference": mol.extra.get("reference"),
            "wall_s": {}, "hosts": {}, "attempts": {},
        }, default=float),
    )
    return rec


def failed_input_record(name: str, reason: str, raw: str, engine: str, level: Level) -> dict:
    rec = empty_record()
    rec.update(key=failure_key(name, raw, engine, level), name=name, status="failed",
               reason=f"input: {reason}", engine=engine, method=level.method, basis=level.basis,
               created_unix=now_unix(),
               provenance=json.dumps({"hessflow_version": __version__, "input": raw}))
    return rec


# -- the tasks -------------------------------------------------------------------------------
def run_opt(mol: Molecule, engine: Engine, level: Level) -> dict:
    res = engine.optimize(mol, level)
    return {"coords_opt_bohr": res.coords_bohr, "energy_hartree": res.energy_hartree,
            "_opt_steps": res.n_steps}


def run_single_point(mol: Molecule, engine: Engine, level: Level) -> dict:
    sp = engine.single_point(mol, level)
    dip = np.asarray(sp.dipole_au, float)
    return {"energy_hartree": sp.energy_hartree, "dipole_au": dip,
            "dipole_debye": float(np.linalg.norm(dip) * AU_DEBYE),
            "homo_hartree": sp.homo_hartree, "lumo_hartree": sp.lumo_hartree,
            "gap_hartree": sp.lumo_hartree - sp.homo_hartree}


def harmonic_fields(mol: Molecule, hessian: np.ndarray, level: Level) -> dict:
    h = Harmonic(mol.masses_amu, mol.coords_bohr, hessian)
    return {"hessian_hartree_bohr2": h.hessian, "frequencies_cm1": h.frequencies_cm1,
            "reduced_masses_amu": h.reduced_masses_amu,
            "force_constants_hartree_bohr2": h.force_constants_hartree_bohr2,
            "modes_cartesian": h.modes_cartesian, "modes_mass_weighted": h.modes_mass_weighted,
            "zpve_hartree": h.zpve_hartree(), "n_imag": int(len(h.imaginary(level.imag_tol_cm1))),
            "_harmonic": h}


def run_freq(mol: Molecule, engine: Engine, level: Level, optimized: bool = True) -> dict:
    """Hessian + harmonic analysis with the imaginary-frequency policy.

    With ``imag_policy="reoptimize"`` on an optimised geometry: displace along the (most) imaginary
    mode, re-optimise once, recompute the Hessian; what remains imaginary is flagged. The returned
    dict then carries the new ``coords_opt_bohr``."""
    out = harmonic_fields(mol, engine.hessian(mol, level), level)
    flags = []
    if out["n_imag"] and optimized and level.imag_policy == "reoptimize":
        h = out["_harmonic"]
        displaced = mol.with_coords(h.displaced_along(int(h.imaginary(level.imag_tol_cm1)[0])))
        opt = run_opt(displaced, engine, level)
        mol = mol.with_coords(opt["coords_opt_bohr"])
        out = harmonic_fields(mol, engine.hessian(mol, level), level)
        out["coords_opt_bohr"] = mol.coords_bohr
        flags.append("reoptimized_imaginary")
    if out["n_imag"]:
        if level.imag_policy == "fail":
            raise EngineError(f"{mol.name}: {out['n_imag']} imaginary frequencies "
                              f"(lowest {out['frequencies_cm1'][0]:.1f} cm-1)", kind="imag")
        flags.append("imaginary_remaining")
    out["_flags"] = flags
    return out


def run_polar(mol: Molecule, engine: Engine, level: Level) -> dict:
    a = engine.polarizability(mol, level)
    return {"alpha_bohr3": a, "alpha_iso_bohr3": properties.alpha_iso(a)}


def run_hyperpolar(mol: Molecule, engine: Engine, level: Level, dipole_au=None) -> dict:
    b = engine.hyperpolarizability(mol, level)
    if dipole_au is None or not np.all(np.isfinite(dipole_au)):
        dipole_au = engine.single_point(mol, level).dipole_au
    return {"beta_au": b, "beta_par_au": properties.beta_parallel(b, dipole_au),
            "beta_vec_au": properties.beta_vec_norm(b)}


def run_task(task: str, mol: Molecule, engine: Engine, level: Level, optimized: bool = True,
             dipole_au=None) -> dict:
    """Run one task by name on ``mol``'s geometry (``optimized``: that geometry came from "opt",
    so the imaginary-mode policy may re-optimise it)."""
    if task == "opt":
        return run_opt(mol, engine, level)
    if task == "freq":
        return run_freq(mol, engine, level, optimized=optimized)
    if task == "sp":
        return run_single_point(mol, engine, level)
    if task == "polar":
        return run_polar(mol, engine, level)
    if task == "hyperpolar":
        return run_hyperpolar(mol, engine, level, dipole_au)
    raise HessflowError(f"unknown task {task!r}")


# -- assembling a record --------------------------------------------------------------------
def done_tasks(rec: dict) -> set[str]:
    return {t for t in str(rec.get("tasks", "")).split(",") if t}


def merge(rec: dict, task: str, fields: dict, wall_s: float, host: str | None = None,
          attempts: int = 1) -> dict:
    """Fold one task's output into a record (in place) and note its provenance."""
    flags = fields.pop("_flags", [])
    fields.pop("_harmonic", None)
    steps = fields.pop("_opt_steps", None)
    rec.update(fields)
    done = done_tasks(rec) | {task}
    rec["tasks"] = ",".join(t for t in TASKS + ("sp",) if t in done)
    old = {f for f in str(rec.get("flags", "")).split(",") if f}
    rec["flags"] = ",".join(sorted(old | set(flags)))
    prov = note_provenance(rec, task, wall_s, host, attempts)
    if steps is not None:
        prov["opt_steps"] = steps
    prov["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    rec["updated_unix"] = now_unix()
    rec["provenance"] = json.dumps(prov, default=float)
    rec["wall_time_s"] = float(sum(prov["wall_s"].values()))
    return rec


def note_provenance(rec: dict, task: str, wall_s: float, host: str | None = None,
                    attempts: int = 1) -> dict:
    """Record one task's wall time, host and attempts in the record's provenance (in place);
    returns the provenance dict."""
    prov = json.loads(rec["provenance"] or "{}")
    prov.setdefault("wall_s", {})[task] = round(wall_s, 3)
    prov.setdefault("hosts", {})[task] = host or platform.node()
    prov.setdefault("attempts", {})[task] = attempts
    rec["provenance"] = json.dumps(prov, default=float)
    return prov


def geometry(rec: dict, mol: Molecule, tasks) -> Molecule:
    if "opt" in tasks and rec.get("coords_opt_bohr") is not None:
        return mol.with_coords(rec["coords_opt_bohr"])
    return mol


def missing_tasks(rec: dict | None, tasks) -> list[str]:
    done = set() if rec is None else done_tasks(rec)
    todo = [t for t in tasks if t not in done]
    if "sp" not in done:
        todo.append("sp")
    return todo


def compute_record(mol: Molecule, engine: Engine, level: Level, tasks,
                   existing: dict | None = None) -> dict:
    """Run whatever of ``tasks`` is missing from ``existing`` and return the record.

    A failing task leaves status "failed" with the reason; every part already finished is kept
    (and is reused by the next attempt)."""
    tasks = parse_tasks(tasks) if isinstance(tasks, str) else tuple(tasks)
    rec = dict(existing) if existing is not None else new_record(mol, engine, level, tasks)
    order = ["opt", "freq", "sp", "polar", "hyperpolar"]
    todo = set(missing_tasks(existing, tasks))
    try:
        for task in order:
            if task not in todo:
                continue
            geom = geometry(rec, mol, tasks)
            t0 = time.perf_counter()
            out = run_task(task, mol if task == "opt" else geom, engine, level,
                           optimized="opt" in tasks, dipole_au=rec.get("dipole_au"))
            if task == "freq" and "coords_opt_bohr" in out:  # re-optimised: properties follow
                todo |= {"sp"} | ({"polar", "hyperpolar"} & set(tasks))
            merge(rec, task, out, time.perf_counter() - t0)
        rec["status"], rec["reason"] = "done", ""
    except EngineError as exc:
        rec["status"], rec["reason"] = "failed", f"{task}: {exc}"
    except HessflowError as exc:
        rec["status"], rec["reason"] = "failed", f"{task}: {exc}"
    return rec
