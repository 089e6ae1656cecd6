"""Energies (and forces) for the Behler–Parrinello network: geometries from a store or an XYZ file.

:func:`load_energies` reads

- a hessflow store: records with status ``done``, ``numbers``, ``energy_hartree`` and
  ``coords_opt_bohr`` if optimised else ``coords_input_bohr``, and their gradient
  ``gradient_hartree_bohr`` (taken at that geometry) when they have one;
- an extended XYZ in ASE's conventions (a ``Properties=`` or ``energy=`` key on the comment
  line): ``energy`` in eV and per-atom ``forces`` in eV/Angstrom of a calculator, as
  ``ase.io.write`` writes an ``Atoms`` with a ``SinglePointCalculator`` and as ``hessflow export
  --format extxyz`` writes (read through :func:`hessflow.formats.extxyz.record_from_atoms`); a
  frame's ``name`` or ``smiles`` key names its molecule, else its chemical formula does;
- a plain XYZ file with ``energy_hartree=...`` (and optionally ``name=``, ``smiles=``) on each
  comment line.

Each geometry carries ``forces_hartree_bohr`` (n, 3), -gradient, or None when the data have none.
:func:`hessflow.workflows.bp_data.generate_xtb_store` makes such a store (with gradients).
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
    coords_bohr, energy_hartree, forces_hartree_bohr ((n, 3) or None)."""
    p = Path(path)
    if not p.exists():
        raise HessflowError(f"{p}: no such file")
    if p.suffix.lower() in (".h5", ".hdf5"):
        return _load_store(p, limit)
    if p.suffix.lower() in (".xyz", ".extxyz"):
        return _load_xyz(p, limit), None
    raise HessflowError(f"{p}: expected a hessflow store (.h5), an extended XYZ (ASE's energy= "
                        f"and forces) or an XYZ file with energy_hartree= on each comment line")


def _load_store(p: Path, limit):
    out = []
    with Store(p) as st:
        t = st.table(["key", "status", "energy_hartree", "engine", "method", "basis"])
        ok = [i for i, (s, e) in enumerate(zip(t["status"], t["energy_hartree"]))
              if s == "done" and np.isfinite(e)]
        if limit:
            ok = ok[:limit]
        keys = [t["key"][i] for i in ok]
        for r in st.get_many(keys, fields=["numbers", "coords_input_bohr", "coords_opt_bohr",
                                           "gradient_hartree_bohr"]):
            coords = r["coords_opt_bohr"] if r["coords_opt_bohr"] is not None else r["coords_input_bohr"]
            if r["numbers"] is None or coords is None:
                continue
            grad = r["gradient_hartree_bohr"]
            out.append({"name": r["name"], "group": molecule_id(r["name"], r["smiles"]),
                        "smiles": r["smiles"], "numbers": np.asarray(r["numbers"], dtype=np.int64),
                        "coords_bohr": np.asarray(coords, dtype=float),
                        "energy_hartree": float(r["energy_hartree"]),
                        "forces_hartree_bohr": None if grad is None else -np.asarray(grad, float)})
    if not out:
        raise HessflowError(f"{p}: no finished records with energy_hartree, numbers and coordinates")
    levels = {(t["engine"][i], t["method"][i], t["basis"][i]) for i in ok}
    level = None
    if len(levels) == 1:
        e, m, b = levels.pop()
        level = {"engine": e, "method": m, "basis": b}
    return out, level


def _is_ase_extxyz(p: Path) -> bool:
    """Whether the first frame's comment line has ASE's ``Properties=`` or ``energy=`` key."""
    with open(p, errors="replace") as fh:
        fh.readline()
        comment = fh.readline()
    try:
        keys = {t.split("=", 1)[0] for t in shlex.split(comment) if "=" in t}
    except ValueError:
        return False
    return bool(keys & {"Properties", "energy"})


def _load_ase_extxyz(p: Path, limit):
    """Frames of an extended XYZ in ASE's conventions (see the module docstring)."""
    import ase.io
    from ...formats.extxyz import record_from_atoms
    try:
        frames = ase.io.read(p, index=":" if not limit else f":{int(limit)}", format="extxyz")
    except Exception as exc:  # ASE's parser: ValueError, KeyError, IndexError...
        raise HessflowError(f"{p}: not a readable extended XYZ file ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:200]})") from None
    out = []
    for k, atoms in enumerate(frames, 1):
        try:
            rec = record_from_atoms(atoms, f"{p.stem}#{k}")
        except ValueError as exc:  # an unsupported element, an array of the wrong shape
            raise HessflowError(f"{p}: frame {k}: {exc}") from None
        energy = float(rec["energy_hartree"])
        if not np.isfinite(energy):
            raise HessflowError(f"{p}: frame {rec['name']} has no energy (no energy= key or "
                                f"calculator energy)")
        named = "name" in atoms.info or "smiles" in atoms.info
        grad = rec.get("gradient_hartree_bohr")
        out.append({"name": rec["name"], "smiles": rec["smiles"],
                    "group": molecule_id(rec["name"], rec["smiles"]) if named
                    else atoms.get_chemical_formula(),
                    "numbers": np.asarray(rec["numbers"], dtype=np.int64),
                    "coords_bohr": np.asarray(
                        rec["coords_opt_bohr"] if rec["coords_opt_bohr"] is not None
                        else rec["coords_input_bohr"], float),
                    "energy_hartree": energy,
                    "forces_hartree_bohr": None if grad is None else -np.asarray(grad, float)})
    if not out:
        raise HessflowError(f"{p}: no frames")
    return out


def _load_xyz(p: Path, limit):
    """Frames of an XYZ file: ASE's extended XYZ (:func:`_load_ase_extxyz`), else comment
    lines carrying ``energy_hartree=`` (and optionally ``name=``, ``smiles=``)."""
    if _is_ase_extxyz(p):
        return _load_ase_extxyz(p, limit)
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
                        "coords_bohr": coords_bohr, "energy_hartree": energy,
                        "forces_hartree_bohr": None})
        if limit and len(out) >= limit:
            break
    if not out:
        raise HessflowError(f"{p}: no frames with a finite energy_hartree")
    return out
