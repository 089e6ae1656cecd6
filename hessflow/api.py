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
from .formats.sources import read_items
from .qm.molecules.inputs import InputFailure
from .qm.tasks import parse_tasks
from .store import Store
from .units import HARTREE_EV

EXPORT_COLUMNS = ("key", "name", "smiles", "status", "energy_hartree", "zpve_hartree",
                  "alpha_iso_bohr3", "beta_par_au", "homo_hartree", "lumo_hartree",
                  "dipole_debye", "n_imag", "gap_hartree", "beta_vec_au", "r2_bohr2", "formula",
                  "charge", "multiplicity", "engine", "method", "basis", "tasks", "flags",
                  "reason")


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


def compute(source, store_path, engine: str = "pyscf", method: str | None = None,
            basis: str | None = None, tasks="opt,freq,polar,hyperpolar", level: Level | None = None,
            progress: bool = True, log=None, limit: int | None = None,
            fallback: bool = True, device: str = "cpu") -> Summary:
    """Compute what is missing for every molecule of ``source`` into ``store_path``.

    ``source``: a file or directory of molecules (SMILES, CSV, XYZ, QM9, SDF, and every format
    ASE reads), or Python objects: ``ase.Atoms``, an RDKit ``Mol``, a QCSchema molecule, a
    hessflow ``Molecule``, or a list of these or of SMILES strings
    (:func:`hessflow.formats.sources.read_items`).

    ``engine``/``method``/``basis`` name the level (or ``level`` gives it whole); ``tasks`` are
    among opt,freq,polar,hyperpolar; ``limit`` stops after that many molecules; ``fallback``
    walks the fallback ladder on engine failures, as ``hessflow run`` does
    (:mod:`hessflow.qm.fallback`). Each finished molecule is committed to the store before the
    next starts. Failures (bad input, engine errors) are recorded with their reason and the run
    goes on. ``device``: ``cpu`` (default), ``cuda`` (the GPU engine gpu4pyscf, an error without a
    usable GPU) or ``auto`` (the GPU when one is usable, else the CPU with a note) for the pyscf
    engine."""
    log = sys.stderr if log is None else log
    tasks = parse_tasks(tasks)
    if engine == "pyscf" and device != "cpu":  # DFT on a GPU: GPU4PySCF behind the same interface
        from .qm.engines.gpu4pyscf_engine import resolve_device
        if resolve_device(device, note=lambda line: print(line, file=log)) == "cuda":
            engine = "gpu4pyscf"
    eng = get_engine(engine)
    level = level or make_level(engine, method, basis)
    items = list(read_items(source, limit=limit))  # raises InputError for empty/missing
    summary = Summary()
    bar = progress_bar(len(items), progress)
    log = bar.lines(log)  # error lines above the bar, never on it
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


def export(store_path, fmt: str = "csv", out=None, thermo=None,
           atom_energies: bool = True) -> str:
    """Write the store in format ``fmt``: ``csv`` (one row per record: :data:`EXPORT_COLUMNS`,
    then the thermochemistry and atomization energies of
    :mod:`hessflow.formats.labels`) or one of the open formats of :mod:`hessflow.formats`
    (``extxyz`` in ASE's conventions, ``asedb``, ``qcschema``, ``qm9``, ``qm9-csv``: the
    ``done`` records). Returns the text of a text format when ``out`` is None; ``out`` may not
    be the store itself and its folder must exist.

    ``thermo``: where the thermochemistry of csv, extxyz, asedb and qcschema is evaluated, a
    :class:`~hessflow.qm.thermo.ThermoSettings` or a mapping of its fields (temperature_k,
    pressure_pa, ...; default 298.15 K, 1 atm); QM9's formats are at 298.15 K and 1 atm only.
    ``atom_energies``: compute the free-atom energies at each record level once (kept in
    ``FILE.h5.free_atoms.json`` next to the store) for the atomization energies of csv,
    qm9-csv, extxyz, asedb and qcschema; False leaves them out."""
    from .formats.export import ATOMIZATION_FORMATS, DERIVED_FORMATS, FORMATS, \
        QM9_CONDITIONS_FORMATS, export_records
    from .formats.labels import ATOMIZATION_COLUMNS, THERMO_COLUMNS, atom_energies_for, \
        derived_labels
    from .qm.thermo import ThermoSettings
    from .settings import from_mapping
    if fmt != "csv" and fmt not in FORMATS:
        raise HessflowError(f"--format: {fmt!r} is not one of csv, {', '.join(FORMATS)}")
    if not isinstance(thermo, ThermoSettings):
        thermo = from_mapping(ThermoSettings, thermo or {}, "thermo")
    if fmt in QM9_CONDITIONS_FORMATS and thermo != ThermoSettings():
        raise HessflowError(f"--format {fmt}: QM9's labels are at 298.15 K and 1 atm; give other "
                            "temperatures, pressures or symmetry numbers to the csv export")
    with_atoms = atom_energies and (fmt == "csv" or fmt in ATOMIZATION_FORMATS + DERIVED_FORMATS)
    if out is not None:
        target = Path(out)
        if target.exists() and target.resolve() == Path(store_path).resolve():
            raise HessflowError(f"-o/--output: {out} is the store itself; name another file")
        if not target.parent.is_dir():
            raise HessflowError(f"-o/--output: {target.parent} is not a directory")
    with Store(store_path, "r") as st:
        if fmt != "csv":
            done = [r for r in st.records() if r["status"] == "done"]
            refs = atom_energies_for(done, store_path) if with_atoms else None

            def derived(rec):
                return derived_labels(rec, thermo, refs)
            return export_records(done, fmt, out, atom_energies=refs,
                                  derived=derived if fmt in DERIVED_FORMATS else None)
        t = st.table(EXPORT_COLUMNS)
        recs = list(st.get_many(t["key"], fields=THERMO_FIELDS))
    refs = atom_energies_for(recs, store_path) if with_atoms else None
    columns = EXPORT_COLUMNS + tuple(THERMO_COLUMNS) + tuple(ATOMIZATION_COLUMNS)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for i, rec in enumerate(recs):
        derived = derived_labels(rec, thermo, refs) if rec["status"] == "done" else {}
        w.writerow([_fmt(t[c][i]) for c in EXPORT_COLUMNS]
                   + [_fmt(derived.get(c, np.nan)) for c in columns[len(EXPORT_COLUMNS):]])
    text = buf.getvalue()
    if out is not None:
        Path(out).write_text(text)
    return text


#: the arrays a record's thermochemistry needs (the csv export reads only these)
THERMO_FIELDS = ("numbers", "masses_amu", "coords_input_bohr", "coords_opt_bohr",
                 "frequencies_cm1")


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else repr(float(v))
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def dumps_info(d: dict) -> str:
    """The text form of :func:`info`'s dict, one line per section."""
    lines = [f"records: {d['records']}"]
    for section in ("by_status", "engines", "methods"):
        items = ", ".join(f"{k or '-'}={v}" for k, v in sorted(d[section].items()))
        lines.append(f"{section.replace('by_', '')}: {items or '-'}")
    return "\n".join(lines)


__all__ = ["compute", "info", "export", "Summary", "summary_table", "make_level", "InputError",
           "json"]
