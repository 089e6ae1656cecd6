"""The one small interface every QM engine implements.

All quantities are in atomic units: coordinates and lengths in Bohr, energies in Hartree,
Hessians in Hartree/Bohr^2, dipoles in e*Bohr, alpha in Bohr^3 (a.u.), beta in a.u.
Engines compute; they do not store, analyse or decide policy (see :mod:`hessflow.qm.tasks` and :mod:`hessflow.qm.fallback`).
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

from ..level import Level
from ..molecules.molecule import Molecule


@dataclasses.dataclass
class SinglePoint:
    energy_hartree: float
    dipole_au: np.ndarray            # (3,), e*Bohr, origin-independent for neutral molecules
    homo_hartree: float = float("nan")
    lumo_hartree: float = float("nan")
    r2_bohr2: float = float("nan")   # electronic spatial extent <R^2> (QM9's r2); NaN: not given


@dataclasses.dataclass
class OptResult:
    coords_bohr: np.ndarray          # (n, 3)
    energy_hartree: float
    n_steps: int
    #: how the optimisation started (GFN2-xTB pre-optimisation, initial Hessian; see
    #: :mod:`.xtb_preopt`), for the record's provenance; None where the engine has no say
    preopt: dict | None = None


class Engine(abc.ABC):
    """One QM program. Subclasses fill in the faces below; each raises
    :class:`hessflow.errors.EngineError` (with ``kind`` "scf", "opt" or "engine") on failure."""

    #: the name users give (``qm.engine``, ``--engine``)
    name: str = "?"
    #: the method when the user names none (None: :class:`Level`'s default, B3LYP)
    default_method: str | None = None
    #: how each task is computed, keyed by task ("sp", "opt", "freq", "polar", "hyperpolar"),
    #: recorded in each record's provenance
    methods: dict[str, str] = {}
    #: the d/f shell conventions (:data:`hessflow.qm.level.SHELLS`) this engine runs as asked;
    #: any other is run as the nearest it has (:meth:`shells_run`)
    shell_conventions: tuple[str, ...] = ("6d7f", "5d7f", "6d10f")

    @classmethod
    def method_error(cls, method: str) -> str | None:
        """None if this engine runs the method a user named (``--method``, ``qm.level.method``),
        else a one-line reason. The default accepts every name (the program itself judges it)."""
        return None

    @abc.abstractmethod
    def why_not_found(self) -> str | None:
        """None if the program is usable here, else a one-line reason."""

    @abc.abstractmethod
    def version(self) -> str:
        """The program's version, for provenance."""

    @abc.abstractmethod
    def single_point(self, mol: Molecule, level: Level) -> SinglePoint:
        """Energy (Hartree), dipole (e*Bohr) and frontier orbital energies at ``mol``'s geometry."""

    @abc.abstractmethod
    def gradient(self, mol: Molecule, level: Level) -> np.ndarray:
        """(n, 3) Cartesian gradient dE/dR of the energy at ``mol.coords_bohr``, Hartree/Bohr
        (the forces are its negative)."""

    @abc.abstractmethod
    def optimize(self, mol: Molecule, level: Level) -> OptResult:
        """Minimum-energy geometry (Bohr) from ``mol``'s, with ``level.opt_convergence``,
        ``opt_max_steps`` and ``opt_trust_radius_bohr``; a failure that stopped somewhere sets
        :attr:`EngineError.last_coords_bohr` (the ladder restarts from there)."""

    @abc.abstractmethod
    def hessian(self, mol: Molecule, level: Level) -> np.ndarray:
        """(3n, 3n) Cartesian Hessian at ``mol.coords_bohr``, Hartree/Bohr^2."""

    @abc.abstractmethod
    def polarizability(self, mol: Molecule, level: Level) -> np.ndarray:
        """(3, 3) static dipole polarizability alpha_ij = d mu_i / d F_j, Bohr^3."""

    @abc.abstractmethod
    def hyperpolarizability(self, mol: Molecule, level: Level) -> np.ndarray:
        """(3, 3, 3) static first hyperpolarizability beta_ijk = d^2 mu_i / dF_j dF_k, a.u."""

    def shells_run(self, level: Level) -> str:
        """The shell convention this engine runs for ``level``: ``level.shells`` when it has it,
        else Cartesian d and f ("6d10f", the nearest to Gaussian's "6d7f" for an engine that
        cannot mix conventions: the d shells, which it gets right, carry most of the difference;
        docs/benchmarks.md measures what the Cartesian f shells change)."""
        return level.shells if level.shells in self.shell_conventions else "6d10f"

    def level_for_key(self, level: Level) -> dict:
        """The part of ``level`` that changes this engine's numbers (for the content key), with
        the shell convention the engine actually runs (:meth:`shells_run`)."""
        return level.replace(shells=self.shells_run(level)).key_dict()
