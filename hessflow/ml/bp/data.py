"""Energies for the Behler–Parrinello network: geometries with energies from a store or an XYZ file.

:func:`load_energies` reads a hessflow store (records with status ``done``, ``numbers``,
``energy_hartree`` and ``coords_opt_bohr`` if optimised else ``coords_input_bohr``) or an XYZ file
with ``energy_hartree=...`` on each comment line (what ``hessflow export --format extxyz``
writes). :func:`hessflow.workflows.bp_data.generate_xtb_store` makes such a store.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from ...errors import HessflowError
from ...qm.molecules.inputs import parse_atoms, xyz_frames
from ...store import Store


def molecule_id(name: str, smiles: str) -> str:
    """The molecule a geometry belongs to: its SMILES, else its name (splits keep it whole)."""
    return smiles or name


def load_energies(path, limit: int | None = None) -> tuple[list[dict], dict | None]:
    """Geometries with energies, and the level of theory ({engine, method, basis}, or None when
    the data do not say or mix levels). Each item: name, group (molecule id), smiles, numbers,
    coords_bohr, energy_hartree."""
    p = Path(path)
    if not p.exists():
        raise HessflowError(f"{p}: no such file")
    if p.suffix.lower() in (".h5", ".hdf5"):
        return _load_store(p, limit)
    if p.suffix.lower() in (".xyz", ".extxyz"):
        return _load_xyz(p, limit), None
    raise HessflowError(f"{p}: expected a hessflow store (.h5) or an XYZ file with energy_hartree= "
                        f"on each comment line")


def _load_store(p: Path, limit):
    out = []
    with Store(p) as st:
        t = st.table(["key", "status", "energy_hartree", "engine", "method", "basis"])
        ok = [i for i, (s, e) in enumerate(zip(t["status"], t["energy_hartree"]))
              if s == "done" and np.isfinite(e)]
        if limit:
            ok = ok[:limit]
        keys = [t["key"][i] for i in ok]
        for r in st.get_many(keys, fields=["numbers", "coords_input_bohr", "coords_opt_bohr"]):
            coords = r["coords_opt_bohr"] if r["coords_opt_bohr"] is not None else r["coords_input_bohr"]
            if r["numbers"] is None or coords is None:
                continue
            out.append({"name": r["name"], "group": molecule_id(r["name"], r["smiles"]),
                        "smiles": r["smiles"], "numbers": np.asarray(r["numbers"], dtype=np.int64),
                        "coords_bohr": np.asarray(coords, dtype=float),
                        "energy_hartree": float(r["energy_hartree"])})
    if not out:
        raise HessflowError(f"{p}: no finished records with energy_hartree, numbers and coordinates")
    levels = {(t["engine"][i], t["method"][i], t["basis"][i]) for i in ok}
    level = None
    if len(levels) == 1:
        e, m, b = levels.pop()
        level = {"engine": e, "method": m, "basis": b}
    return out, level


def _load_xyz(p: Path, limit):
    """Frames of an extended XYZ whose comment lines carry ``energy_hartree=`` (and optionally
    ``name=``, ``smiles=``), as ``hessflow export --format extxyz`` writes them."""
    out = []
    for frame, start, block, err in xyz_frames(p):
        if err:
            raise HessflowError(f"{p}: {err}")
        try:
            kv = dict(t.split("=", 1) for t in shlex.split(block[1]) if "=" in t)
        except ValueError as exc:
            raise HessflowError(f"{p}:{start + 1}: cannot parse the comment line ({exc})") from None
        name = kv.get("name") or f"{p.stem}#{frame}"
        if "energy_hartree" not in kv:
            raise HessflowError(f"{p}:{start + 1}: frame {name} has no energy_hartree= on its comment line")
        try:  # (an unknown element is already a one-line InputError)
            energy = float(kv["energy_hartree"])
            numbers, coords_bohr, _ = parse_atoms(block[2:2 + int(block[0].split()[0])],
                                                   f"{p}: frame {name}")
        except ValueError as exc:  # an energy or a coordinate that is not a number
            raise HessflowError(f"{p}: frame {name}: {exc}") from None
        if np.isfinite(energy):
            smiles = kv.get("smiles", "")
            out.append({"name": name, "group": molecule_id(name, smiles), "smiles": smiles,
                        "numbers": np.asarray(numbers, dtype=np.int64),
                        "coords_bohr": coords_bohr, "energy_hartree": energy})
        if limit and len(out) >= limit:
            break
    if not out:
        raise HessflowError(f"{p}: no frames with a finite energy_hartree")
    return out
