"""A trained Behler–Parrinello network as an ASE calculator (energy and forces).

::

    from ase.optimize import BFGS
    from hessflow.ml.bp.calculator import BPCalculator
    atoms.calc = BPCalculator("runs/bp")          # a `hessflow bp train` run directory
    BFGS(atoms).run(fmax=0.01)

ASE's units at this edge: positions in Angstrom, energy in eV, forces in eV/Angstrom (hessflow's
CODATA 2018 constants, :mod:`hessflow.units`); inside, the network works in Bohr and Hartree.
The forces are −∂E/∂R by autograd through the ACSF
(:meth:`~hessflow.ml.bp.network.BPNetwork.energy_and_forces`). Periodic cells are refused (the
network is for molecules).
"""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from ...errors import HessflowError
from ...units import ANGSTROM_BOHR, HARTREE_EV
from .network import BPNetwork, load_bp_model


class BPCalculator(Calculator):
    """ASE calculator of a trained network: ``BPCalculator(run)`` with ``run`` a run directory
    or model.pt of ``hessflow bp train`` (read by :func:`load_bp_model`), or a
    :class:`BPNetwork` itself. Properties: ``energy`` (eV), ``free_energy`` (the same),
    ``forces`` (eV/Angstrom)."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, run, **kwargs):
        super().__init__(**kwargs)
        self.net: BPNetwork = run if isinstance(run, BPNetwork) else load_bp_model(run)
        self.net = self.net.double().eval()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if np.any(self.atoms.pbc):
            raise HessflowError("BPCalculator: periodic cells are not supported (a molecular "
                                "network)")
        z = torch.as_tensor(self.atoms.numbers, dtype=torch.long)[None]
        x = torch.as_tensor(self.atoms.positions * ANGSTROM_BOHR, dtype=torch.float64)[None]
        e, f = self.net.energy_and_forces(z, x)
        energy = float(e[0]) * HARTREE_EV
        self.results = {"energy": energy, "free_energy": energy,
                        "forces": f[0].detach().numpy() * (HARTREE_EV * ANGSTROM_BOHR)}
