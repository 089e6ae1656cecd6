"""The Python API; the command line (:mod:`hessflow.cli`) is a thin layer over it.

>>> from hessflow import api
>>> summary = api.compute("molecules.smi", "data.h5", engine="pyscf", tasks="opt,freq,polar")
>>> api.info("data.h5")
>>> api.export("data.h5", "csv", "data.csv")
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from .errors import HessflowError, InputError
from .progress import Summary, progress_bar
from .qm import assemble
from .qm.engines import engine_level, get_engine
from .qm.level import Level
from .qm.molecules.inputs import InputFailure, read_molecules
from .qm.tasks import parse_tasks
from .store import Store
from .units import BOHR_ANGSTROM, HARTREE_EV

EXPORT_COLUMNS = ("key", "name", "smiles", "status", "energy_hartree", "zpve_hartree",
                  "alpha_iso_bohr3", "beta_par_au", "homo_hartree", "lumo_hartree",
                  "dipole_debye", "n_imag", "gap_hartree", "beta_vec_au", "formula", "charge",
                  "multiplicity", "engine", "method", "basis", "tasks", "flags", "reason")


def make_level(engine: str, method=None, basis=None, **settings) -> Level:
    """The :class:`Level` for ``engine`` from command-line style options: ``method``, ``basis``
    and any Level field in ``settings`` (None: not given, the default); the engine's default
    method when none is named. Raises :class:`~hessflow.errors.SettingsError` (a
    :class:`HessflowError`) for a bad setting."""
    d = {k: v for k, v in settings.items() if v is not None}
    if method:
        d["method"] = method
    if basis:
        d["basis"] = basis
    return engine_level(engine, d)


def compute(input_path, store_path, engine: str = "pyscf", method: str | None = None,
            basis: str | None = None, tasks="opt,freq,polar,hyperpolar", level: Level | None = None,
            progress: bool = True, log=sys.stderr, limit: int | None = None,
            fallback: bool = True) -> Summary:
    """Compute what is missing for every molecule of ``input_path`` into ``store_path``.

    ``engine``/``method``/``basis`` name the level (or ``level`` gives it whole); ``tasks`` are
    among opt,freq,polar,hyperpolar; ``limit`` stops after that many molecules; ``fallback``
    walks the fallback ladder on engine failures, as ``hessflow run`` does
    (:mod:`hessflow.qm.fallback`). Each finished molecule is committed to the store before the
    next starts. Failures (bad input, engine errors) are recorded with their reason and the run
    goes on."""
    tasks = parse_tasks(tasks)
    eng = get_engine(engine)
    level = level or make_level(engine, method, basis)
    items = list(read_molecules(input_path, limit=limit))  # raises InputError for empty/missing
    summary = Summary()
    bar = progress_bar(len(items), progress)
    with Store(store_path, "a") as st:
        for item in items:
            if isinstance(item, InputFailure):
                st.put(assemble.failed_input_record(item.name, item.reason, item.raw, eng.name, level))
                print(f"error: {item}", file=log)
                summary.failed += 1
                summary.rows.append((item.name, "failed", item.reason))
                bar.update()
                continue
            key = assemble.request_key(item, eng, level, tasks)
            existing = st.get(key) if key in st else None
            if existing is not None and not assemble.missing_tasks(existing, tasks) \
                    and existing["status"] == "done":
                summary.skipped += 1
                summary.rows.append((item.name, "skipped", existing))
                bar.update()
                continue
            bar.set_postfix_str(item.name[:20])
            rec = assemble.compute_record(item, eng, level, tasks, existing, fallback=fallback)
            st.put(rec)
            if rec["status"] == "done":
                summary.done += 1
            else:
                summary.failed += 1
                print(f"error: {item.name}: {rec['reason']}", file=log)
            summary.rows.append((item.name, rec["status"], rec))
            bar.update()
    bar.close()
    return summary


def summary_table(summary: Summary) -> str:
    """The table printed after ``compute`` and ``run``: one line per molecule (energy in
    Hartree, ZPVE and gap in eV, alpha_iso in Bohr^3, beta_par in a.u.) and the summary line."""
    head = f"{'molecule':<22} {'status':<8} {'E/Eh':>14} {'ZPVE/eV':>9} {'alpha/Bohr^3':>12} " \
           f"{'beta_par/au':>11} {'gap/eV':>7} {'n_imag':>6} {'time/s':>7}"
    lines = [head, "-" * len(head)]
    for name, status, rec in summary.rows:
        if not isinstance(rec, dict):
            lines.append(f"{name[:22]:<22} {status:<8} {rec}")
            continue
        if status == "failed":
            lines.append(f"{name[:22]:<22} {status:<8} {rec['reason']}")
            continue
        lines.append(
            f"{name[:22]:<22} {status:<8} {rec['energy_hartree']:14.6f} "
            f"{rec['zpve_hartree'] * HARTREE_EV:9.4f} {rec['alpha_iso_bohr3']:12.3f} "
            f"{rec['beta_par_au']:11.3f} {rec['gap_hartree'] * HARTREE_EV:7.3f} "
            f"{rec['n_imag']:6d} {rec['wall_time_s']:7.1f}")
    lines.append(summary.line)
    return "\n".join(lines)


def info(store_path) -> dict:
    """Counts of a store's records by status, engine and method (:meth:`Store.summary`)."""
    with Store(store_path, "r") as st:
        return st.summary()


def export(store_path, fmt: str = "csv", out=None) -> str:
    """Write the store as CSV (one row per record) or extended XYZ (optimised geometries in
    Angstrom with labels in the comment line). Returns the text when ``out`` is None."""
    with Store(store_path, "r") as st:
        if fmt == "csv":
            t = st.table(EXPORT_COLUMNS)
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(EXPORT_COLUMNS)
            for i in range(len(t["key"])):
                w.writerow([_fmt(t[c][i]) for c in EXPORT_COLUMNS])
            text = buf.getvalue()
        elif fmt == "extxyz":
            text = "".join(_extxyz(rec) for rec in st.records() if rec["status"] == "done")
        else:
            raise HessflowError(f"--format: {fmt!r} is not csv or extxyz")
    if out is None:
        return text
    Path(out).write_text(text)
    return text


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else repr(float(v))
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def _extxyz(rec) -> str:
    from .qm.molecules.elements import symbol
    coords = rec["coords_opt_bohr"] if rec["coords_opt_bohr"] is not None else rec["coords_input_bohr"]
    props = {k: rec[k] for k in ("energy_hartree", "zpve_hartree", "alpha_iso_bohr3", "beta_par_au",
                                 "homo_hartree", "lumo_hartree", "dipole_debye", "n_imag")}
    head = " ".join(f"{k}={_fmt(v) if _fmt(v) != '' else 'nan'}" for k, v in props.items())
    lines = [str(rec["n_atoms"]),
             f'Properties=species:S:1:pos:R:3 key={rec["key"]} name="{rec["name"]}" '
             f'smiles="{rec["smiles"]}" charge={rec["charge"]} multiplicity={rec["multiplicity"]} '
             f"{head}"]
    for z, r in zip(rec["numbers"], np.asarray(coords) * BOHR_ANGSTROM):
        lines.append(f"{symbol(z):<2} {r[0]:15.8f} {r[1]:15.8f} {r[2]:15.8f}")
    return "\n".join(lines) + "\n"


def dumps_info(d: dict) -> str:
    """The text form of :func:`info`'s dict, one line per section."""
    lines = [f"records: {d['records']}"]
    for section in ("by_status", "engines", "methods"):
        items = ", ".join(f"{k or '-'}={v}" for k, v in sorted(d[section].items()))
        lines.append(f"{section.replace('by_', '')}: {items or '-'}")
    return "\n".join(lines)


__all__ = ["compute", "info", "export", "Summary", "summary_table", "make_level", "InputError",
           "json"]
