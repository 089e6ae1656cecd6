"""Free-atom reference energies: one single point per element, each atom in its ground state.

Used as per-element reference energies: by the Behler–Parrinello network's ``--reference atoms``
(the network then learns atomisation energies) and by the exports' atomization energies
(:func:`hessflow.qm.thermo.record_atomization_energies`). The multiplicity of each atom is 2S+1
of its ground term, from the NIST Atomic Spectra Database ground levels
(:data:`GROUND_STATE_MULTIPLICITY`, every element hessflow accepts).

"The same level" is the record's: its engine and the level settings its provenance keeps
(:func:`record_level`: basis convention, grid, convergence as well as method and basis). The
single points are computed once per level and element: :func:`free_atom_energies` with a
``cache`` file (JSON, ``{level key: {Z: Hartree}}``, written atomically) reads what it holds and
adds what it computes; the exports keep it next to the store (:func:`cache_path`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import EngineError, HessflowError
from .engines import get_engine
from .level import Level
from .molecules.elements import symbol
from .thermo import GROUND_STATE_MULTIPLICITY, free_atom_molecule

__all__ = ["GROUND_STATE_MULTIPLICITY", "free_atom_energies", "record_level", "cache_path",
           "level_key", "RecordAtomEnergies"]


def record_level(record: dict) -> dict:
    """The level of a stored record as :func:`free_atom_energies` takes it: ``{"engine",
    "method", "basis", "level"}``, ``level`` being the record's whole
    :meth:`~hessflow.qm.level.Level.key_dict` from its provenance (absent in records without
    one: method and basis alone then)."""
    out = {"engine": str(record.get("engine") or ""), "method": str(record.get("method") or ""),
           "basis": str(record.get("basis") or "")}
    try:
        prov = json.loads(record.get("provenance") or "{}")
    except ValueError:
        prov = {}
    if isinstance(prov.get("level"), dict):
        out["level"] = prov["level"]
    return out


def _level(level: dict) -> Level:
    if level.get("level"):
        return Level.from_mapping({**level["level"], "threads": 1}, "free-atom level")
    kw = {"method": level.get("method") or "b3lyp", "threads": 1}
    if level.get("basis"):
        kw["basis"] = level["basis"]
    return Level(**kw)


def level_key(level: dict) -> str:
    """The cache key of ``level`` (as :func:`free_atom_energies` takes it): the engine and the
    level settings that change the energies, as canonical JSON."""
    lvl = get_engine(level["engine"]).level_for_key(_level(level))
    return json.dumps({"engine": level["engine"], "level": lvl}, sort_keys=True, default=str)


def cache_path(store_path) -> Path:
    """Where the exports keep a store's free-atom energies: ``FILE.h5.free_atoms.json``."""
    p = Path(store_path)
    return p.with_name(p.name + ".free_atoms.json")


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict) -> bool:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
        return True
    except OSError:  # a read-only folder: the energies are computed again next time
        tmp.unlink(missing_ok=True)
        return False


def free_atom_energies(elements, level: dict | None, cache=None) -> dict[int, float]:
    """Free-atom energies (Hartree) at ``level`` for ``elements`` (atomic numbers), each atom in
    its ground-state multiplicity; ``{Z: energy}``.

    ``level``: ``{"engine", "method", "basis"}`` as a store's records name it, optionally with
    ``"level"``, the records' whole level settings (:func:`record_level`; without it method
    defaults to b3lyp, basis to the engine's default); one thread per single point. ``cache``: a
    JSON file of energies already computed (see the module docstring), or None."""
    if not level or not level.get("engine"):
        raise HessflowError("free-atom energies: the data do not name one level of theory "
                            "(engine/method), so free-atom energies cannot be computed")
    wanted = sorted({int(z) for z in elements})
    for z in wanted:
        if z not in GROUND_STATE_MULTIPLICITY:
            raise HessflowError(f"element Z={z}: no ground-state multiplicity tabulated")
    key = level_key(level)
    data = _read_cache(Path(cache)) if cache is not None else {}
    held = {int(z): float(e) for z, e in (data.get(key) or {}).items()}
    todo = [z for z in wanted if z not in held]
    if todo:
        eng, lvl = get_engine(level["engine"]), _level(level)
        for z in todo:
            atom = free_atom_molecule(z, f"{symbol(z)} atom").validate()
            try:
                held[z] = float(eng.single_point(atom, lvl).energy_hartree)
            except EngineError as exc:
                raise HessflowError(f"free {symbol(z)} atom at {level['engine']}/{lvl.method}: "
                                    f"{exc}") from None
        if cache is not None:
            data[key] = {str(z): e for z, e in sorted(held.items())}
            _write_cache(Path(cache), data)
    return {z: held[z] for z in wanted}


class RecordAtomEnergies:
    """Free-atom energies for records of any level: ``refs(record) -> {Z: Hartree}`` at the
    record's level (:func:`record_level`), each level's elements computed once (and kept in
    ``cache``, a JSON file or None). Give it ``records`` up front to compute each level's
    elements in one go."""

    def __init__(self, cache=None, records=()):
        self.cache = cache
        self._held: dict[str, dict[int, float]] = {}
        wanted: dict[str, tuple[dict, set]] = {}
        for rec in records:
            level = record_level(rec)
            if level["engine"] and rec.get("numbers") is not None:
                entry = wanted.setdefault(level_key(level), (level, set()))
                entry[1].update(int(z) for z in rec["numbers"])
        for key, (level, elements) in wanted.items():
            self._held[key] = free_atom_energies(elements, level, self.cache)

    def __call__(self, record: dict) -> dict[int, float]:
        level = record_level(record)
        key = level_key(level)
        held = self._held.setdefault(key, {})
        elements = {int(z) for z in record["numbers"]}
        if not elements <= set(held):
            held.update(free_atom_energies(elements | set(held), level, self.cache))
        return held
