"""Molecules from anything a user holds: files of every supported format and Python objects.

:func:`read_items` is the one entry point of ``hessflow compute`` (:func:`hessflow.api.compute`)
and of the workflow's inputs. A *source* is

- a path (``str`` or :class:`~pathlib.Path`) to a file or a directory: hessflow's own readers
  (:data:`hessflow.qm.molecules.inputs.READERS`: SMILES, CSV, XYZ and QM9 extended XYZ, SDF) for
  their suffixes, ASE's extended XYZ and every other format ``ase.io.read`` understands for the
  rest (``.extxyz``, ``.traj``, ``.cif``, ``.pdb``, ``.db``, ...), QCSchema JSON for ``.json``
  files holding a QCSchema molecule;
- an ``ase.Atoms``; an RDKit ``Mol``; a qcelemental ``Molecule`` (or its dict, or an
  ``AtomicInput``); a hessflow :class:`~hessflow.qm.molecules.molecule.Molecule`;
- a list or tuple of any of these, or of SMILES strings (``["CCO", "c1ccccc1"]``).

Every item is a validated :class:`Molecule` or an
:class:`~hessflow.qm.molecules.inputs.InputFailure` naming the molecule and the reason, so one bad
entry is recorded and the rest go on; a source that cannot be read at all raises
:class:`~hessflow.errors.InputError` (one line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from ..qm.molecules import conformers
from ..qm.molecules.inputs import READERS, Item, guarded, read_molecules
from ..qm.molecules.molecule import Molecule

__all__ = ["read_items", "describe_source"]

#: suffixes hessflow's own readers keep; ``.extxyz`` goes to ASE (names from the ``name`` key)
OWN_SUFFIXES = frozenset(s for s in READERS if s != ".extxyz")


def describe_source(source) -> str:
    """A short name of ``source`` for messages and provenance."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (list, tuple)):
        return f"{len(source)} {type(source).__name__} items"
    return type(source).__name__


def read_items(source, limit: int | None = None, embed: bool = True,
               seed: int = conformers.DEFAULT_SEED) -> Iterator[Item]:
    """The molecules (or failures) of ``source`` (see the module docstring), at most ``limit``.

    ``embed=False`` defers the RDKit conformer of SMILES inputs (``Molecule.needs_conformer``),
    as the workflow does; ``seed`` is the conformer seed."""
    if limit is not None and limit < 0:
        raise InputError("--limit", f"must be >= 0, got {limit}")
    items = _items(source, embed, seed)
    for i, item in enumerate(items):
        if limit is not None and i >= limit:
            return
        yield item


def _items(source, embed: bool, seed: int) -> Iterator[Item]:
    if isinstance(source, (str, Path)):
        yield from _path_items(Path(source), embed, seed)
    elif isinstance(source, (list, tuple)):
        if not source:
            raise InputError("input", "empty list: no molecules")
        for k, obj in enumerate(source):
            if isinstance(obj, str) and not Path(obj).exists():
                yield _smiles_item(obj, f"input[{k}]", embed, seed)
            else:
                yield from _items(obj, embed, seed)
    else:
        yield _object_item(source)


def _path_items(path: Path, embed: bool, seed: int) -> Iterator[Item]:
    if path.is_dir() or path.suffix.lower() in OWN_SUFFIXES:
        yield from read_molecules(path, embed=embed, seed=seed)
        return
    if not path.exists():
        raise InputError(str(path), "no such file")
    if path.stat().st_size == 0:
        raise InputError(str(path), "empty file: no molecules")
    if path.suffix.lower() == ".json" and _is_qcschema(path):
        from .qcschema import molecule_from_qcschema
        yield guarded(path.stem, str(path), str(path), lambda: molecule_from_qcschema(path, path.stem))
        return
    from .ase_input import read_ase_items
    yield from read_ase_items(path)


def _is_qcschema(path: Path) -> bool:
    try:
        obj = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and ("symbols" in obj or "molecule" in obj)


def _smiles_item(smiles: str, where: str, embed: bool, seed: int) -> Item:
    return guarded(smiles, smiles, where, lambda: conformers.from_smiles(
        smiles, smiles, seed=seed, source=where, embed_now=embed))


def _object_item(obj) -> Item:
    """One Python object -> a Molecule (or the failure); an unknown kind raises InputError."""
    if isinstance(obj, Molecule):
        return guarded(obj.name, "", "Molecule", obj.validate)
    kind = type(obj).__module__.split(".")[0]
    if kind == "ase":
        from .ase_input import molecule_from_atoms
        return guarded(obj.get_chemical_formula(), "", "ase.Atoms", lambda: molecule_from_atoms(obj))
    if kind == "rdkit":
        from .ase_input import molecule_from_rdkit
        return guarded("rdkit.Mol", "", "rdkit.Mol", lambda: molecule_from_rdkit(obj))
    if kind == "qcelemental" or (isinstance(obj, dict) and ("symbols" in obj or "molecule" in obj)):
        from .qcschema import molecule_from_qcschema
        return guarded(getattr(obj, "name", None) or "QCSchema molecule", "", "qcschema",
                       lambda: molecule_from_qcschema(obj))
    raise InputError("input", f"cannot read molecules from a {type(obj).__name__} (give a path, "
                              "SMILES strings, ase.Atoms, an RDKit Mol, a QCSchema molecule or a "
                              "list of them)")
