"""Level of theory and numerical settings shared by all engines.

Defaults reproduce QM9's level: B3LYP/6-31G(2df,p) with Gaussian's B3LYP (VWN-RPA, which is what
both PySCF >= 2.3 and psi4 call ``b3lyp``) and Gaussian's shells for the 6-31G family, Cartesian d
and pure f ("6D 7F", :data:`SHELLS`), which is what QM9 was computed with (docs/qm9.md measures it).
All numbers are in atomic units (Bohr, Hartree) unless the field name says otherwise.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..settings import from_mapping, meta, settings_error
from .basis_library import digest
from ..units import ANGSTROM_BOHR, BOHR_ANGSTROM

IMAG_POLICIES = ("reoptimize", "flag", "fail")
#: what a DFT optimisation starts from: the GFN2-xTB minimum ("xtb") or the input geometry
PREOPT_CHOICES = ("xtb", "none")
#: the DFT optimiser's first Hessian: xTB's at the start geometry, or geomeTRIC's model guess
OPT_INITIAL_HESSIANS = ("xtb", "guess")

#: shell conventions, in Gaussian's words: "6d7f" Cartesian d (6) and pure f (7), Gaussian's default
#: for the 6-31G family and QM9's; "5d7f" pure d and f (hessflow's default until QM9's convention
#: was measured; most programs' default for modern basis sets); "6d10f" Cartesian d and f.
SHELLS = ("6d7f", "5d7f", "6d10f")

#: named response grids: SG-1, PySCF's (50, 194) grid with SG-1 pruning (Gaussian's CPHF grid)
NAMED_RESPONSE_GRIDS = ("sg1",)

# Settings that do not change converged numbers, so they are left out of the content key.
NON_KEY_FIELDS = ("threads", "max_cycle", "damping", "level_shift", "soscf", "opt_max_steps",
                  "opt_trust_radius_bohr", "memory_mb", "preopt", "opt_initial_hessian")

# The key of earlier versions for the optimiser's trust radius, in Angstrom; still accepted
# by :meth:`Level.from_mapping` (workflow configs, ``qm.level``) and converted to Bohr.
LEGACY_TRUST_KEY = "opt_trust_radius"
# The key of earlier versions for the shell convention: ``cartesian: true`` is "6d10f", ``false``
# "5d7f" (accepted by :meth:`Level.from_mapping`; content keys of those two stay as they were).
LEGACY_SHELLS_KEY = "cartesian"


@dataclasses.dataclass
class Level:
    """Method, basis and numerical settings.

    grid: PySCF-style integer level (0-9), or ``"R,S"`` for an unpruned grid of R radial and
        S Lebedev angular points per atom (understood by every DFT engine alike).
    shells: ``"6d7f"`` (Cartesian d, pure f: Gaussian's 6-31G convention, QM9's), ``"5d7f"``
        (pure) or ``"6d10f"`` (Cartesian); see :data:`SHELLS`. Engines that cannot mix d and f
        conventions say in :meth:`~hessflow.qm.engines.base.Engine.level_for_key` what they run.
    conv_tol: SCF energy convergence, Hartree.
    opt_convergence: geomeTRIC convergence set; ``"GAU"`` is Gaussian's default (QM9's).
    field_step_au: electric-field step (atomic units) for finite-field beta.
    imag_policy: ``"reoptimize"`` (displace along the imaginary mode, re-optimise once, then flag),
        ``"flag"`` (record only) or ``"fail"``.
    imag_tol_cm1: a mode below ``-imag_tol_cm1`` (cm^-1) counts as imaginary.
    threads: threads per QM calculation (0: all the engine sees).
    max_cycle, damping, level_shift (Hartree), soscf: SCF numerics (fallback-ladder knobs).
    opt_max_steps: optimiser step limit; opt_trust_radius_bohr: its initial trust radius, Bohr
        (0.1 Angstrom; engines convert to their optimiser's unit).
    memory_mb: memory per QM calculation, MiB.
    response_grid: the DFT grid of the coupled-perturbed (CPHF/CPKS) response, i.e. the
        XC-kernel term of the orbital response in the analytic Hessian and in alpha (hence in
        finite-field beta): ``"sg1"`` (default since issue 14: SG-1, (50, 194) pruned, the grid
        Gaussian 09 used for CPKS), None or ``"scf"`` the SCF grid (the route before), an
        integer level 0-9 or ``"R,S"``. The SCF, the gradient and the Hessian's explicit XC
        second-derivative terms keep ``grid``. Part of the content key unless it is the SCF
        grid (so records of the route before keep their keys: ``response_grid: scf`` finds
        them); docs/benchmarks.md measures what SG-1 changes (frequencies ~1e-3 cm^-1).
    density_fit: auxiliary basis for density fitting of Coulomb and exchange (e.g.
        ``"def2-universal-jkfit"``) in SCF, gradient, Hessian and alpha; None (default): exact
        four-centre integrals. Part of the content key when set.
    preopt: ``"xtb"`` (default) pre-optimises a DFT optimisation's start geometry with GFN2-xTB
        (same convergence set and step limit), ``"none"`` starts DFT from the input geometry
        (the route before issue 14). Engines without an xTB-aware optimiser (xtb, psi4) ignore it.
    opt_initial_hessian: the DFT optimiser's first Hessian: ``"xtb"`` (default) the GFN2-xTB
        Hessian at the geometry DFT starts from (the xTB minimum with ``preopt="xtb"``),
        ``"guess"`` geomeTRIC's model Hessian (the route before issue 14).
        Both are left out of the content key (:data:`NON_KEY_FIELDS`), like the trust radius and
        the step limit: they change the optimiser's path, not the minimum it converges to
        (within ``opt_convergence``), and a record computed either way stays valid (existing
        stores keep their keys). A different path *can* end in another conformer of a flexible
        molecule, as a different trust radius can; which route a record took is in its
        provenance (``preopt``, ``opt_steps``), and ``benchmarks/bench_preopt.py`` measures how
        often the conformer changes.
    """

    method: str = dataclasses.field(default="b3lyp", metadata=meta("functional, hf, or an xTB method"))
    basis: str = dataclasses.field(default="6-31g(2df,p)", metadata=meta("basis set"))
    grid: Any = dataclasses.field(default=4, metadata=meta("DFT grid: level 0-9 or 'R,S'"))
    shells: str = dataclasses.field(default="6d7f", metadata=meta(
        "d/f shell convention (Gaussian's words)", choices=SHELLS))
    conv_tol: float = dataclasses.field(default=1e-10, metadata=meta("SCF convergence", unit="Hartree"))
    opt_convergence: str = "GAU"
    field_step_au: float = dataclasses.field(default=1e-3, metadata=meta(
        "finite-field step", unit="a.u."))
    imag_policy: str = dataclasses.field(default="reoptimize", metadata=meta(
        "what an imaginary frequency triggers", choices=IMAG_POLICIES))
    imag_tol_cm1: float = dataclasses.field(default=10.0, metadata=meta(
        "imaginary-mode tolerance", unit="cm^-1"))
    # numerics that do not change converged results (fallback-ladder knobs)
    threads: int = dataclasses.field(default=0, metadata=meta("threads (0: all)", minimum=0))
    max_cycle: int = dataclasses.field(default=100, metadata=meta("SCF cycles", minimum=1))
    damping: float = 0.0
    level_shift: float = dataclasses.field(default=0.0, metadata=meta("SCF level shift",
                                                                      unit="Hartree"))
    soscf: bool = False
    opt_max_steps: int = dataclasses.field(default=100, metadata=meta("optimiser steps", minimum=1))
    opt_trust_radius_bohr: float = dataclasses.field(default=0.1 * ANGSTROM_BOHR, metadata=meta(
        "initial optimiser trust radius", unit="Bohr"))
    memory_mb: int = dataclasses.field(default=4000, metadata=meta("memory", unit="MiB"))
    # response and integral approximations (issue 14): change the numbers, keyed when set
    response_grid: Any = dataclasses.field(default="sg1", metadata=meta(
        "grid of the CPHF/CPKS response (Hessian, alpha): 'sg1', 'scf' (None) = the SCF "
        "grid, 0-9, 'R,S'", check=lambda where, v: check_grid_spec(where, v, NAMED_RESPONSE_GRIDS)))
    density_fit: str | None = dataclasses.field(default=None, metadata=meta(
        "auxiliary basis for density fitting (None: exact integrals)"))
    # how a DFT optimisation starts (issue 14): the path, not the minimum (see NON_KEY_FIELDS)
    preopt: str = dataclasses.field(default="xtb", metadata=meta(
        "pre-optimise DFT optimisations with GFN2-xTB", choices=PREOPT_CHOICES))
    opt_initial_hessian: str = dataclasses.field(default="xtb", metadata=meta(
        "the DFT optimiser's initial Hessian: xTB's or geomeTRIC's guess",
        choices=OPT_INITIAL_HESSIANS))

    def __post_init__(self):
        self.method = str(self.method).lower()
        self.basis = str(self.basis).lower()
        self.shells = str(self.shells).lower()
        if self.shells not in SHELLS:
            raise ValueError(f"shells: {self.shells!r} is not {' | '.join(SHELLS)}")
        if self.imag_policy not in IMAG_POLICIES:
            raise ValueError(f"imag_policy: {self.imag_policy!r} is not reoptimize|flag|fail")
        if self.preopt not in PREOPT_CHOICES:
            raise ValueError(f"preopt: {self.preopt!r} is not {'|'.join(PREOPT_CHOICES)}")
        self.response_grid = check_grid_spec("response_grid", self.response_grid,
                                             NAMED_RESPONSE_GRIDS)
        if self.density_fit is not None:
            self.density_fit = str(self.density_fit).strip().lower() or None
        if self.opt_initial_hessian not in OPT_INITIAL_HESSIANS:
            raise ValueError(f"opt_initial_hessian: {self.opt_initial_hessian!r} is not "
                             f"{'|'.join(OPT_INITIAL_HESSIANS)}")

    @property
    def grid_points(self):
        """(radial, angular) for an explicit grid, or None for an integer level."""
        if isinstance(self.grid, str) and "," in self.grid:
            r, s = self.grid.split(",")
            return int(r), int(s)
        if isinstance(self.grid, (tuple, list)):
            return int(self.grid[0]), int(self.grid[1])
        return None

    @property
    def cartesian_d(self) -> bool:
        """Whether d shells are Cartesian (6 functions)."""
        return self.shells.startswith("6d")

    @property
    def cartesian_f(self) -> bool:
        """Whether f (and higher) shells are Cartesian (10 functions for f)."""
        return self.shells == "6d10f"

    @property
    def is_hf(self) -> bool:
        """Whether ``method`` names Hartree-Fock rather than a functional."""
        return self.method in ("hf", "rhf", "uhf", "scf")

    def key_dict(self) -> dict:
        """The settings that change converged numbers (the content key's part of the level)."""
        d = dataclasses.asdict(self)
        for f in NON_KEY_FIELDS:
            d.pop(f)
        if self.grid_points:
            d["grid"] = "%d,%d" % self.grid_points
        for name in ("response_grid", "density_fit"):  # keyed only when set: old keys stay
            if d[name] is None:
                d.pop(name)
        if digest(self.basis):  # a shipped basis file: its content is part of the key
            d["basis_digest"] = digest(self.basis)
        if d["shells"] in ("5d7f", "6d10f"):  # the keys of stores written before "shells"
            d[LEGACY_SHELLS_KEY] = d.pop("shells") == "6d10f"
        return d

    def replace(self, **kw) -> "Level":
        """A copy with the fields ``kw`` changed (the fallback ladder's rungs)."""
        return dataclasses.replace(self, **kw)

    @classmethod
    def from_mapping(cls, mapping: Mapping | None, where: str = "level",
                     default_method: str | None = None) -> "Level":
        """A Level from user settings (YAML ``qm.level``, CLI options), checked field by field.

        ``where`` is the dotted prefix for error messages; ``default_method`` replaces the
        ``method`` default when the mapping names none (an engine's own default, e.g. xTB's).
        The legacy key ``opt_trust_radius`` (Angstrom) is accepted and converted to Bohr, and the
        legacy ``cartesian`` (true: "6d10f", false: "5d7f") gives ``shells``; a ``basis_digest``
        (a :meth:`key_dict` read back) must be the shipped basis file's.
        Raises :class:`~hessflow.errors.SettingsError` naming the field."""
        d = dict(mapping or {})
        if LEGACY_TRUST_KEY in d:
            if "opt_trust_radius_bohr" in d:
                raise settings_error(f"{where}.{LEGACY_TRUST_KEY}",
                                     "give opt_trust_radius_bohr or opt_trust_radius, not both")
            angstrom = d.pop(LEGACY_TRUST_KEY)
            if isinstance(angstrom, bool) or not isinstance(angstrom, (int, float)):
                raise settings_error(f"{where}.{LEGACY_TRUST_KEY}",
                                     f"expected a number (Angstrom), got {angstrom!r}")
            d["opt_trust_radius_bohr"] = float(angstrom) * ANGSTROM_BOHR
        recorded_digest = d.pop("basis_digest", None)  # a record's key_dict read back
        if LEGACY_SHELLS_KEY in d:
            if "shells" in d:
                raise settings_error(f"{where}.{LEGACY_SHELLS_KEY}",
                                     "give shells or cartesian, not both")
            cart = d.pop(LEGACY_SHELLS_KEY)
            if not isinstance(cart, bool):
                raise settings_error(f"{where}.{LEGACY_SHELLS_KEY}",
                                     f"expected true or false, got {cart!r}")
            d["shells"] = "6d10f" if cart else "5d7f"
        if default_method and not d.get("method"):
            d["method"] = default_method
        try:
            level = from_mapping(cls, d, where)
        except ValueError as exc:  # from __post_init__
            raise settings_error(where, str(exc)) from None
        if recorded_digest is not None and recorded_digest != digest(level.basis):
            raise settings_error(f"{where}.basis_digest", f"basis {level.basis!r} is not the file "
                                 f"these numbers were computed with (digest {recorded_digest}, "
                                 f"shipped now: {digest(level.basis)})")
        return level


def check_grid_spec(where: str, spec, names=()):
    """A DFT grid given as an integer level 0-9, ``"R,S"`` (radial, angular points; also a pair)
    or one of ``names``; None and ``"scf"`` mean "the SCF grid" (None). Returns the normal form
    (int, ``"R,S"``, a name or None); anything else raises a one-line SettingsError naming
    ``where``."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "scf")):
        return None
    allowed = " | ".join(("0-9", "'R,S'", *(repr(n) for n in names), "'scf'"))
    if isinstance(spec, bool):
        raise settings_error(where, f"{spec!r} is not a grid ({allowed})")
    if isinstance(spec, (list, tuple)) and len(spec) == 2:
        spec = "%s,%s" % tuple(spec)
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s in names:
            return s
        if s.isdigit():
            spec = int(s)
        elif "," in s:
            parts = [p.strip() for p in s.split(",")]
            if len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts):
                return "%d,%d" % (int(parts[0]), int(parts[1]))
    if isinstance(spec, int) and 0 <= spec <= 9:
        return int(spec)
    raise settings_error(where, f"{spec!r} is not a grid ({allowed})")


def geometric_trust_angstrom(level: Level) -> tuple[float, float]:
    """``(trust, tmax)`` for geomeTRIC, in Angstrom: the level's initial trust radius and the
    largest one allowed (0.3 Angstrom, or the trust radius if larger). Rounded to 12 digits so the
    Angstrom -> Bohr -> Angstrom round trip gives geomeTRIC exactly the numbers it was given."""
    trust = round(float(level.opt_trust_radius_bohr) * BOHR_ANGSTROM, 12)
    return trust, max(0.3, trust)
