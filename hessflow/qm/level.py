"""Level of theory and numerical settings shared by all engines.

Defaults reproduce QM9's level: B3LYP/6-31G(2df,p) with Gaussian's B3LYP (VWN-RPA, which is what
both PySCF >= 2.3 and psi4 call ``b3lyp``), pure (spherical) d and f shells.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# Settings that do not change converged numbers, so they are left out of the content key.
NON_KEY_FIELDS = ("threads", "max_cycle", "damping", "level_shift", "soscf", "opt_max_steps",
                  "opt_trust_radius", "memory_mb")


@dataclasses.dataclass
class Level:
    """Method, basis and numerical settings.

    grid: PySCF-style integer level (0-9), or ``"R,S"`` for an unpruned grid of R radial and
        S Lebedev angular points per atom (understood by every DFT engine alike).
    cartesian: Cartesian (6d/10f) instead of pure (5d/7f) shells.
    opt_convergence: geomeTRIC convergence set; ``"GAU"`` is Gaussian's default (QM9's).
    field_step_au: electric-field step (atomic units) for finite-field beta.
    imag_policy: ``"reoptimize"`` (displace along the imaginary mode, re-optimise once, then flag),
        ``"flag"`` (record only) or ``"fail"``.
    """

    method: str = "b3lyp"
    basis: str = "6-31g(2df,p)"
    grid: Any = 4
    cartesian: bool = False
    conv_tol: float = 1e-10
    opt_convergence: str = "GAU"
    field_step_au: float = 1e-3
    imag_policy: str = "reoptimize"
    imag_tol_cm1: float = 10.0
    # numerics that do not change converged results (fallback-ladder knobs)
    threads: int = 0
    max_cycle: int = 100
    damping: float = 0.0
    level_shift: float = 0.0
    soscf: bool = False
    opt_max_steps: int = 100
    opt_trust_radius: float = 0.1
    memory_mb: int = 4000

    def __post_init__(self):
        self.method = str(self.method).lower()
        self.basis = str(self.basis).lower()
        if self.imag_policy not in ("reoptimize", "flag", "fail"):
            raise ValueError(f"imag_policy: {self.imag_policy!r} is not reoptimize|flag|fail")

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
    def is_hf(self) -> bool:
        return self.method in ("hf", "rhf", "uhf", "scf")

    def key_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for f in NON_KEY_FIELDS:
            d.pop(f)
        if self.grid_points:
            d["grid"] = "%d,%d" % self.grid_points
        return d

    def replace(self, **kw) -> "Level":
        return dataclasses.replace(self, **kw)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Level":
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"level: unknown setting(s) {unknown}")
        return cls(**d)
