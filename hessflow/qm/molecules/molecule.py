"""The in-memory molecule every stage passes around (atomic units inside)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from ...errors import InputError
from ...units import ANGSTROM_BOHR
from .elements import SUPPORTED_Z, masses_amu, symbol

MIN_DISTANCE_BOHR = 0.5 * ANGSTROM_BOHR  # closer than 0.5 Angstrom counts as overlapping atoms


@dataclasses.dataclass
class Molecule:
    """A molecule: atomic numbers, Cartesian coordinates (Bohr), charge and multiplicity.

    ``smiles`` is the canonical isomeric SMILES when known (from SMILES/SDF/QM9 input);
    ``source`` says where it came from (file:line) for error messages; ``masses`` (amu, one per
    atom) are the isotope masses of a labelled input (``[2H]O[2H]``), None for the most abundant
    isotope of every atom (:attr:`masses_amu` gives the masses either way).
    """

    name: str
    numbers: np.ndarray
    coords_bohr: np.ndarray
    charge: int = 0
    multiplicity: int = 1
    smiles: str = ""
    source: str = ""
    extra: dict = dataclasses.field(default_factory=dict)  # e.g. QM9 reference labels
    masses: np.ndarray | None = None

    def __post_init__(self):
        self.numbers = np.asarray(self.numbers, dtype=np.int64).reshape(-1)
        self.coords_bohr = np.asarray(self.coords_bohr, dtype=np.float64).reshape(-1, 3)
        if self.masses is not None:
            self.masses = np.asarray(self.masses, dtype=np.float64).reshape(-1)
            if self.masses.size == self.numbers.size and np.allclose(
                    self.masses, masses_amu(self.numbers), rtol=0, atol=1e-6):
                self.masses = None  # the most abundant isotopes: nothing to label

    @property
    def natoms(self) -> int:
        return int(self.numbers.size)

    @property
    def symbols(self) -> list[str]:
        return [symbol(z) for z in self.numbers]

    @property
    def masses_amu(self) -> np.ndarray:
        """Atomic masses (amu): the isotope labels' when given, else the most abundant isotopes'."""
        return self.masses.copy() if self.masses is not None else np.asarray(masses_amu(self.numbers))

    @property
    def n_electrons(self) -> int:
        return int(self.numbers.sum()) - int(self.charge)

    @property
    def formula(self) -> str:
        syms = self.symbols
        order = sorted(set(syms), key=lambda s: (s != "C", s != "H", s))
        if "C" not in syms:
            order = sorted(set(syms))
        return "".join(f"{s}{syms.count(s) if syms.count(s) > 1 else ''}" for s in order)

    def with_coords(self, coords_bohr) -> "Molecule":
        return dataclasses.replace(self, coords_bohr=np.array(coords_bohr, dtype=float).reshape(-1, 3))

    @property
    def needs_conformer(self) -> bool:
        """True for a SMILES molecule whose 3D embedding was deferred (see conformers.embed_molecule)."""
        return bool(self.extra.get("needs_conformer"))

    def validate(self, geometry: bool = True) -> "Molecule":
        """Raise :class:`InputError` (one line naming the molecule) if this molecule is unusable.
        ``geometry=False`` checks elements, charge and multiplicity only."""
        if self.natoms == 0:
            raise InputError(self.name, "no atoms")
        bad = sorted({int(z) for z in self.numbers} - SUPPORTED_Z)
        if bad:
            raise InputError(self.name, f"unsupported element(s) Z={bad}")
        if self.masses is not None and (self.masses.size != self.natoms
                                        or not np.all(np.isfinite(self.masses))
                                        or np.any(self.masses <= 0)):
            raise InputError(self.name, f"{self.masses.size} atomic masses for {self.natoms} atoms "
                                        "(each finite and > 0)")
        if self.multiplicity < 1:
            raise InputError(self.name, f"multiplicity {self.multiplicity} must be >= 1")
        nel = self.n_electrons
        if nel < 0:
            raise InputError(self.name, f"charge {self.charge} leaves {nel} electrons")
        if (nel + self.multiplicity - 1) % 2 != 0 or self.multiplicity - 1 > nel:
            raise InputError(
                self.name,
                f"{nel} electrons (charge {self.charge}) contradict multiplicity {self.multiplicity}",
            )
        if not geometry:
            return self
        if not np.all(np.isfinite(self.coords_bohr)):
            raise InputError(self.name, "non-finite coordinates")
        if self.natoms > 1:
            d = np.linalg.norm(self.coords_bohr[:, None] - self.coords_bohr[None], axis=-1)
            d[np.diag_indices(self.natoms)] = np.inf
            i, j = np.unravel_index(np.argmin(d), d.shape)
            if d[i, j] < MIN_DISTANCE_BOHR:
                raise InputError(
                    self.name,
                    f"overlapping atoms {self.symbols[i]}{i + 1} and {self.symbols[j]}{j + 1} "
                    f"({d[i, j] / ANGSTROM_BOHR:.3f} Angstrom apart)",
                )
        return self

    def structure_id(self) -> str:
        """Canonical identity of the structure (not of its conformer when a SMILES is known)."""
        if self.smiles:
            return "smiles:" + self.smiles  # isomeric: isotope labels are part of it
        xyz = np.round(self.coords_bohr, 4) + 0.0  # +0.0 folds -0.0
        sid = "xyz:" + json.dumps([[int(z), *map(float, r)] for z, r in zip(self.numbers, xyz)])
        if self.masses is not None:  # isotopologues are different requests
            sid += ";masses:" + json.dumps([round(float(m), 6) for m in self.masses])
        return sid


def content_key(structure_id: str, charge: int, multiplicity: int, engine: str, level: dict) -> str:
    """Content hash (sha256 hex) of a computation request: same request -> same key."""
    payload = json.dumps(
        {"structure": structure_id, "charge": int(charge), "multiplicity": int(multiplicity),
         "engine": engine, "level": level},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()
