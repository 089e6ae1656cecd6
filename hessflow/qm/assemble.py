"""From a molecule to a store record: keys, new records, merging task results, the rules.

The tasks (:mod:`hessflow.qm.tasks`) run through the fallback ladder
(:mod:`hessflow.qm.fallback`); this module folds each outcome into the record — its fields,
provenance (wall time, host, attempts, the corrections that were applied) and flags — and holds
the rule that a re-optimisation after an imaginary mode invalidates the properties computed on the
old geometry (:func:`redo_after`). :func:`compute_record` chains the tasks of one molecule for
``hessflow compute``; the workflow submits them as separate apps and folds the results with the
same functions (:mod:`hessflow.workflows.graph`).
"""

from __future__ import annotations

import json
import platform
import time

from .. import __version__
from .engines.base import Engine
from .fallback import TaskOutcome, run_with_fallback
from .level import Level
from .molecules.molecule import Molecule, content_key
from .record import empty_record, now_unix
from .tasks import ORDER, TASKS, parse_tasks

#: the tasks whose results a re-optimised geometry invalidates ("sp" always runs)
GEOMETRY_DEPENDENT = ("sp", "polar", "hyperpolar")


def request_key(mol: Molecule, engine: Engine, level: Level, tasks) -> str:
    """The content key of a request: structure, charge, multiplicity, engine, the level's keyed
    settings, whether the geometry is optimised, and the conformer (for sampled geometries)."""
    lvl = dict(engine.level_for_key(level))
    lvl["geometry"] = "optimized" if "opt" in tasks else "input"
    if "conformer" in mol.extra and mol.smiles:
        lvl["conformer"] = mol.extra["conformer"]
    return content_key(mol.structure_id(), mol.charge, mol.multiplicity, engine.name, lvl)


def failure_key(name: str, raw: str, engine: str, level: Level, reason: str = "") -> str:
    """Key of an input that could not even be read: its name, its text ``raw`` (the whole input
    line, so that lines of one SMILES with different charges stay apart) and the ``reason``, so
    that each failed line is recorded once, under its own key, with its own reason."""
    ident = json.dumps([name, raw, reason], separators=(",", ":"))
    return content_key("unreadable:" + ident, 0, 0, engine, level.key_dict())


def new_record(mol: Molecule, engine: Engine, level: Level, tasks) -> dict:
    """A "failed, not computed yet" record of ``mol`` with its inputs and provenance."""
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
    """The record of an input that could not be read (``raw``: its text), failed with ``reason``."""
    rec = empty_record()
    rec.update(key=failure_key(name, raw, engine, level, reason), name=name, status="failed",
               reason=f"input: {reason}", engine=engine, method=level.method, basis=level.basis,
               created_unix=now_unix(),
               provenance=json.dumps({"hessflow_version": __version__, "input": raw}))
    return rec


# -- assembling a record --------------------------------------------------------------------
def done_tasks(rec: dict) -> set[str]:
    """The tasks whose results the record holds."""
    return {t for t in str(rec.get("tasks", "")).split(",") if t}


def merge(rec: dict, task: str, fields: dict, wall_s: float, host: str | None = None,
          attempts: int = 1, corrections=None) -> dict:
    """Fold one task's output into a record (in place) and note its provenance.

    ``wall_s``: the task's seconds; ``host``: where it ran (default: here); ``attempts``: how many
    times it was started (lost workers); ``corrections``: the fallback rungs that were applied
    (:attr:`TaskOutcome.corrections`), kept under ``provenance["corrections"][task]``; what the
    engine warned about (``fields["_engine_log"]``, :mod:`hessflow.qm.engine_log`) under
    ``provenance["engine_log"][task]``; how an optimisation started (``fields["_preopt"]``, the
    GFN2-xTB pre-optimisation: its steps, the initial Hessian) under ``provenance["preopt"]``,
    next to the DFT steps under ``provenance["opt_steps"]``."""
    flags = fields.pop("_flags", [])
    fields.pop("_harmonic", None)
    steps = fields.pop("_opt_steps", None)
    preopt = fields.pop("_preopt", None)
    engine_log = fields.pop("_engine_log", None)
    rec.update(fields)
    done = done_tasks(rec) | {task}
    rec["tasks"] = ",".join(t for t in TASKS + ("sp",) if t in done)
    old = {f for f in str(rec.get("flags", "")).split(",") if f}
    rec["flags"] = ",".join(sorted(old | set(flags)))
    prov = note_provenance(rec, task, wall_s, host, attempts)
    if steps is not None:
        prov["opt_steps"] = steps
    if preopt is not None:
        prov["preopt"] = preopt
    if corrections:
        prov.setdefault("corrections", {})[task] = list(corrections)
    if engine_log:
        prov.setdefault("engine_log", {})[task] = list(engine_log)
    prov["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    rec["updated_unix"] = now_unix()
    rec["provenance"] = json.dumps(prov, default=float)
    rec["wall_time_s"] = float(sum(prov["wall_s"].values()))
    return rec


def mark_failed(rec: dict, reason: str, corrections=None) -> dict:
    """Set the record failed with ``reason`` (in place); the fallback rungs tried before giving
    up are kept under ``provenance["corrections_tried"]``."""
    rec["status"], rec["reason"] = "failed", reason
    if corrections:
        prov = json.loads(rec["provenance"] or "{}")
        prov["corrections_tried"] = list(corrections)
        rec["provenance"] = json.dumps(prov, default=float)
    return rec


def redo_after(rec: dict, task: str, fields: dict, tasks) -> list[str]:
    """The tasks to compute again because ``task``'s result moved the geometry.

    A "freq" whose imaginary-mode policy re-optimised the geometry (its ``fields`` carry
    ``coords_opt_bohr``) invalidates the single point and, of the requested ``tasks``, alpha and
    beta: they are dropped from the record's done tasks (in place) and returned, in run order."""
    if task != "freq" or "coords_opt_bohr" not in fields:
        return []
    redo = [t for t in GEOMETRY_DEPENDENT if t in tasks or t == "sp"]
    rec["tasks"] = ",".join(t for t in TASKS + ("sp",) if t in done_tasks(rec) and t not in redo)
    return redo


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
    """``mol`` at the record's optimised geometry when ``tasks`` optimise and it exists."""
    if "opt" in tasks and rec.get("coords_opt_bohr") is not None:
        return mol.with_coords(rec["coords_opt_bohr"])
    return mol


def missing_tasks(rec: dict | None, tasks) -> list[str]:
    """The tasks of ``tasks`` (plus "sp") that ``rec`` (None: nothing yet) has no result of."""
    done = set() if rec is None else done_tasks(rec)
    todo = [t for t in tasks if t not in done]
    if "sp" not in done:
        todo.append("sp")
    return todo


def compute_record(mol: Molecule, engine: Engine, level: Level, tasks,
                   existing: dict | None = None, fallback: bool = True) -> dict:
    """Run whatever of ``tasks`` is missing from ``existing`` and return the record.

    Each task runs through the fallback ladder (``fallback=False``: none), here, one after the
    other. A failing task leaves status "failed" with the reason; every part already finished is
    kept (and is reused by the next attempt)."""
    tasks = parse_tasks(tasks) if isinstance(tasks, str) else tuple(tasks)
    rec = dict(existing) if existing is not None else new_record(mol, engine, level, tasks)
    todo = set(missing_tasks(existing, tasks))
    for task in ORDER:
        if task not in todo:
            continue
        geom = geometry(rec, mol, tasks)
        out: TaskOutcome = run_with_fallback(
            task, mol if task == "opt" else geom, engine, level, fallback=fallback,
            optimized="opt" in tasks, dipole_au=rec.get("dipole_au"))
        if not out.ok:
            return mark_failed(rec, out.reason, out.corrections)
        redo = redo_after(rec, task, out.fields, tasks)
        merge(rec, task, out.fields, out.wall_s, corrections=out.corrections)
        todo |= set(redo)
    rec["status"], rec["reason"] = "done", ""
    return rec
