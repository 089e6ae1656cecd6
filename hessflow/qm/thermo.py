"""Ideal-gas, rigid-rotor, harmonic-oscillator thermochemistry with Gaussian's conventions, and
QM9's labels (rotational constants, ZPVE, U0, U, H, G, Cv, atomization energies).

Pure numpy, atomic units inside (Hartree, Bohr, amu; pressure in Hartree/Bohr^3 internally).
Gaussian's conventions ("Thermochemistry in Gaussian", J. W. Ochterski, 2000), which made QM9:

- translational: q_t = (m kT / 2 pi hbar^2)^(3/2) kT / P;  U = 3/2 kT, Cv = 3/2 k,
  S = k (ln q_t + 5/2) (Sackur-Tetrode at pressure P);
- electronic: only the ground state, q_e = spin multiplicity; U = 0, Cv = 0, S = k ln(2S+1);
- rotational (rigid rotor, classical, high-temperature limit), sigma = rotational symmetry number:
  linear: q_r = 2 I kT / (sigma hbar^2), U = kT, Cv = k, S = k (ln q_r + 1);
  nonlinear: q_r = sqrt(pi) / sigma * prod_i (2 I_i kT / hbar^2)^(1/2), U = 3/2 kT, Cv = 3/2 k,
  S = k (ln q_r + 3/2);  an atom has no rotational term;
- vibrational (harmonic, energy zero at the bottom of the well, so U_vib includes the ZPVE):
  every real frequency counts as a harmonic oscillator, however low; imaginary frequencies (given
  as negative wavenumbers, hessflow's convention) and zeros are left out, as Gaussian leaves out
  imaginary ones, and their number is reported. No frequency scaling (QM9 used none);
- U0 = E + ZPVE; U(T) = E + U_t + U_r + U_v + U_e; H = U + kT; G = H - T S; all per molecule.

QM9's units (Ramakrishnan et al., Sci. Data 1, 140022 (2014)): A, B, C in GHz; zpve, u0, u298,
h298, g298 in Hartree; cv in cal/(mol K); u0_atom ... g298_atom in kcal/mol (as the widely used
QM9 CSV writes them: molecule minus free atoms, negative). QM9 writes 0 for an undefined
rotational constant (A of a linear molecule); :func:`rotational_constants_ghz` gives inf there
and :meth:`Thermochemistry.to_qm9_labels` writes QM9's 0.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np

from ..settings import meta
from ..units import AMU_ME, BOHR_ANGSTROM, HARTREE_KCALMOL, HARTREE_WAVENUMBER, KB_HARTREE
from .molecules.elements import masses_amu as element_masses_amu
from .molecules.elements import symbol
from .harmonic import is_linear, principal_axes
from .molecules.molecule import Molecule

HARTREE_J = 4.3597447222071e-18              # CODATA 2018
LIGHT_SPEED_CM_S = 29979245800.0             # exact
HARTREE_HZ = HARTREE_WAVENUMBER * LIGHT_SPEED_CM_S          # 1 Hartree / h in Hz
AU_PRESSURE_PA = HARTREE_J / (BOHR_ANGSTROM * 1e-10) ** 3   # 1 Hartree/Bohr^3 in Pa
STANDARD_ATMOSPHERE_PA = 101325.0
DEFAULT_TEMPERATURE_K = 298.15
SYMMETRY_TOL_BOHR = 0.02  # an optimised geometry is symmetric only to the optimiser's tolerance

# Ground-state spin multiplicity of the free atoms hessflow supports (Hund's rules), as Gaussian
# and QM9's free-atom references use them (H 2, C 3, N 4, O 3, F 2).
GROUND_STATE_MULTIPLICITY = {
    1: 2, 2: 1, 3: 2, 4: 1, 5: 2, 6: 3, 7: 4, 8: 3, 9: 2, 10: 1, 11: 2, 12: 1, 13: 2, 14: 3,
    15: 4, 16: 3, 17: 2, 18: 1, 19: 2, 20: 1, 35: 2, 53: 2,
}


@dataclasses.dataclass
class ThermoSettings:
    """Where the thermochemistry is evaluated (build from a mapping with settings.from_mapping)."""

    temperature_k: float = dataclasses.field(
        default=DEFAULT_TEMPERATURE_K, metadata=meta("temperature", minimum=1e-3, unit="K"))
    pressure_pa: float = dataclasses.field(
        default=STANDARD_ATMOSPHERE_PA, metadata=meta("pressure", minimum=1e-6, unit="Pa"))
    symmetry_tol_bohr: float = dataclasses.field(
        default=SYMMETRY_TOL_BOHR,
        metadata=meta("distance within which a rotated atom counts as its image", minimum=1e-8,
                      unit="Bohr"))
    symmetry_number: int | None = dataclasses.field(
        default=None,
        metadata=meta("rotational symmetry number; none: from the point group (1 reproduces "
                      "QM9 where QM9's geometry had lost its symmetry)", minimum=1))

    def kwargs(self) -> dict:
        """Keyword arguments of :func:`thermochemistry`."""
        return dataclasses.asdict(self)


# -- rotations ------------------------------------------------------------------------------
def rotational_constants_ghz(masses_amu, coords_bohr) -> np.ndarray:
    """Rotational constants A >= B >= C (GHz), B_i = h / (8 pi^2 I_i), from masses (amu) and
    coordinates (Bohr). An undefined constant (zero moment: A of a linear molecule, all three of
    an atom) is inf; a molecule is linear by :func:`hessflow.qm.harmonic.is_linear`."""
    m = np.asarray(masses_amu, float).reshape(-1)
    if len(m) == 1:
        return np.full(3, np.inf)
    moments, _ = principal_axes(m, coords_bohr)
    moments = moments * AMU_ME  # m_e Bohr^2
    with np.errstate(divide="ignore"):
        b = HARTREE_HZ / (2.0 * moments) * 1e-9
    if is_linear(m, coords_bohr):
        b[0] = np.inf
    return b


def _maps_onto(numbers, r, image, tol) -> bool:
    """True if the points ``image`` (n, 3) are the atoms ``r`` permuted among equal elements."""
    d = np.linalg.norm(image[:, None, :] - r[None, :, :], axis=2)
    d[numbers[:, None] != numbers[None, :]] = np.inf
    j = d.argmin(1)
    return bool(np.all(d[np.arange(len(r)), j] < tol) and len(set(j.tolist())) == len(r))


def _frame(a, b):
    e1 = a / np.linalg.norm(a)
    e2 = b - (b @ e1) * e1
    e2 /= np.linalg.norm(e2)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=1)


def rotational_symmetry_number(numbers, coords_bohr, tol_bohr: float = SYMMETRY_TOL_BOHR,
                               masses_amu=None) -> int:
    """The rotational symmetry number sigma: how many proper rotations (identity included) map
    the molecule onto itself, permuting only atoms of one element, each atom landing within
    ``tol_bohr`` of its image. This is the order of the point group's rotational subgroup, i.e.
    Gaussian's table (:func:`symmetry_number_of_point_group`): C1/Ci/Cs 1, Cn/Cnv/Cnh n,
    Dn/Dnd/Dnh 2n, Sn n/2, T/Td 12, O/Oh 24, I/Ih 60, Coov 1, Dooh 2; an atom 1."""
    z = np.asarray(numbers, int).reshape(-1)
    x = np.asarray(coords_bohr, float).reshape(-1, 3)
    m = np.asarray(element_masses_amu(z) if masses_amu is None else masses_amu, float)
    if len(z) == 1:
        return 1
    r = x - (m[:, None] * x).sum(0) / m.sum()
    if is_linear(m, x):
        return 2 if _maps_onto(z, r, -r, tol_bohr) else 1
    norms = np.linalg.norm(r, axis=1)
    a = int(norms.argmax())
    cross = np.linalg.norm(np.cross(r[a], r), axis=1)
    b = int(cross.argmax())
    frame = _frame(r[a], r[b])
    dab = np.linalg.norm(r[a] - r[b])
    count = 0
    for a2 in np.flatnonzero((z == z[a]) & (np.abs(norms - norms[a]) < tol_bohr)):
        for b2 in np.flatnonzero((z == z[b]) & (np.abs(norms - norms[b]) < tol_bohr)):
            if a2 == b2 or abs(np.linalg.norm(r[a2] - r[b2]) - dab) > 2 * tol_bohr:
                continue
            rot = _frame(r[a2], r[b2]) @ frame.T  # proper: both frames are right-handed
            if _maps_onto(z, r, r @ rot.T, tol_bohr):
                count += 1
    return max(count, 1)


def symmetry_number_of_point_group(name: str) -> int:
    """Gaussian's rotational symmetry number for a Schoenflies point-group name as PySCF writes
    it (C1, Cs, Ci, C2v, C3v, D2h, D3d, D6h, S4, Td, Oh, Ih, Coov, Dooh, SO3 ...)."""
    g = str(name)
    fixed = {"SO3": 1, "C1": 1, "Ci": 1, "Cs": 1, "Coov": 1, "Dooh": 2, "T": 12, "Td": 12,
             "Th": 12, "O": 24, "Oh": 24, "I": 60, "Ih": 60}
    if g in fixed:
        return fixed[g]
    digits = "".join(c for c in g if c.isdigit())
    if not digits or g[0] not in "CDS":
        raise ValueError(f"point group {name!r} is not a Schoenflies name")
    n = int(digits)
    return {"C": n, "D": 2 * n, "S": n // 2}[g[0]]


# -- the result -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Contribution:
    """One term of the partition function: thermal energy (Hartree; the vibrational one
    includes the ZPVE), entropy and constant-volume heat capacity (Hartree/K), per molecule."""

    u_hartree: float
    s_hartree_k: float
    cv_hartree_k: float


@dataclasses.dataclass(frozen=True)
class Thermochemistry:
    """Thermochemistry of one molecule at ``temperature_k`` and ``pressure_pa`` (per molecule).

    u0 = E + ZPVE; u = E + thermal energy; h = u + kT; g = h - T s. ``rotor`` is "atom",
    "linear" or "nonlinear"; ``n_imaginary_left_out`` counts the imaginary (and zero) frequencies
    left out of the vibrational sums.
    """

    temperature_k: float
    pressure_pa: float
    energy_hartree: float
    zpve_hartree: float
    u0_hartree: float
    u_hartree: float
    h_hartree: float
    g_hartree: float
    s_hartree_k: float
    cv_hartree_k: float
    rotational_constants_ghz: tuple
    rotor: str
    symmetry_number: int
    multiplicity: int
    n_modes_used: int
    n_imaginary_left_out: int
    translational: Contribution
    rotational: Contribution
    vibrational: Contribution
    electronic: Contribution

    @property
    def cv_cal_mol_k(self) -> float:
        return hartree_k_to_cal_mol_k(self.cv_hartree_k)

    @property
    def s_cal_mol_k(self) -> float:
        return hartree_k_to_cal_mol_k(self.s_hartree_k)

    def to_qm9_labels(self) -> dict:
        """QM9's columns A, B, C (GHz; 0 where undefined), zpve, u0, u298, h298, g298 (Hartree)
        and cv (cal/(mol K)). QM9's names hold values at 298.15 K and 1 atm only: a ValueError
        for any other temperature or pressure (use the typed fields then)."""
        _check_qm9_conditions(self)
        a, b, c = (0.0 if not math.isfinite(v) else float(v) for v in self.rotational_constants_ghz)
        return {"A": a, "B": b, "C": c, "zpve": self.zpve_hartree, "u0": self.u0_hartree,
                "u298": self.u_hartree, "h298": self.h_hartree, "g298": self.g_hartree,
                "cv": self.cv_cal_mol_k}


def hartree_k_to_cal_mol_k(value_hartree_k: float) -> float:
    """Hartree/K per molecule -> cal/(mol K) (thermochemical calorie, 4.184 J, as Gaussian)."""
    return float(value_hartree_k) * HARTREE_KCALMOL * 1000.0


def _check_qm9_conditions(t: Thermochemistry):
    if abs(t.temperature_k - DEFAULT_TEMPERATURE_K) > 1e-9 or \
            abs(t.pressure_pa - STANDARD_ATMOSPHERE_PA) > 1e-6:
        raise ValueError(f"QM9's labels are at 298.15 K and 101325 Pa, not {t.temperature_k:g} K "
                         f"and {t.pressure_pa:g} Pa")


# -- the partition functions ----------------------------------------------------------------
def _translational(mass_amu, kt, pressure_au) -> Contribution:
    q = (mass_amu * AMU_ME * kt / (2.0 * math.pi)) ** 1.5 * kt / pressure_au
    return Contribution(1.5 * kt, KB_HARTREE * (math.log(q) + 2.5), 1.5 * KB_HARTREE)


def _rotational(rotor, moments_me_bohr2, sigma, kt) -> Contribution:
    if rotor == "atom":
        return Contribution(0.0, 0.0, 0.0)
    if rotor == "linear":
        inertia = math.sqrt(moments_me_bohr2[1] * moments_me_bohr2[2])
        q = 2.0 * inertia * kt / sigma
        return Contribution(kt, KB_HARTREE * (math.log(q) + 1.0), KB_HARTREE)
    q = math.sqrt(math.pi) / sigma * float(np.prod(np.sqrt(2.0 * moments_me_bohr2 * kt)))
    return Contribution(1.5 * kt, KB_HARTREE * (math.log(q) + 1.5), 1.5 * KB_HARTREE)


def _vibrational(omega_hartree, kt) -> Contribution:
    w = np.asarray(omega_hartree, float)
    zpve = 0.5 * float(w.sum())
    if w.size == 0:
        return Contribution(0.0, 0.0, 0.0)
    x = w / kt
    em = np.exp(-x)  # no overflow: x > 0
    thermal = float((w * em / (1.0 - em)).sum())
    s = float((x * em / (1.0 - em) - np.log1p(-em)).sum())
    cv = float((x ** 2 * em / (1.0 - em) ** 2).sum())
    return Contribution(zpve + thermal, KB_HARTREE * s, KB_HARTREE * cv)


def thermochemistry(energy_hartree: float, numbers, coords_bohr, frequencies_cm1, *,
                    multiplicity: int = 1, temperature_k: float = DEFAULT_TEMPERATURE_K,
                    pressure_pa: float = STANDARD_ATMOSPHERE_PA, symmetry_number: int | None = None,
                    masses_amu=None,
                    symmetry_tol_bohr: float = SYMMETRY_TOL_BOHR) -> Thermochemistry:
    """Ideal-gas RRHO thermochemistry of one molecule with Gaussian's conventions (module doc).

    energy_hartree: electronic energy E at the geometry; numbers: atomic numbers; coords_bohr:
    (n, 3) Bohr; frequencies_cm1: harmonic wavenumbers (cm^-1; negative = imaginary, left out),
    e.g. :attr:`hessflow.qm.harmonic.Harmonic.frequencies_cm1`; multiplicity: 2S+1 of the
    electronic ground state; temperature_k (K), pressure_pa (Pa); symmetry_number: sigma, or None
    to find it with :func:`rotational_symmetry_number` (tolerance symmetry_tol_bohr, Bohr);
    masses_amu: per-atom masses, default hessflow's most-abundant-isotope masses (Gaussian's).
    """
    z = np.asarray(numbers, int).reshape(-1)
    x = np.asarray(coords_bohr, float).reshape(-1, 3)
    m = np.asarray(element_masses_amu(z) if masses_amu is None else masses_amu, float).reshape(-1)
    if temperature_k <= 0 or pressure_pa <= 0:
        raise ValueError(f"temperature {temperature_k} K and pressure {pressure_pa} Pa must be > 0")
    if len(z) == 1:
        rotor, moments = "atom", np.zeros(3)
    else:
        rotor = "linear" if is_linear(m, x) else "nonlinear"
        moments = principal_axes(m, x)[0] * AMU_ME
    sigma = int(symmetry_number) if symmetry_number is not None else \
        rotational_symmetry_number(z, x, symmetry_tol_bohr, masses_amu=m)
    freqs = np.asarray(frequencies_cm1, float).reshape(-1)
    real = freqs[freqs > 0]
    kt = KB_HARTREE * float(temperature_k)
    trans = _translational(float(m.sum()), kt, pressure_pa / AU_PRESSURE_PA)
    rot = _rotational(rotor, moments, sigma, kt)
    vib = _vibrational(real / HARTREE_WAVENUMBER, kt)
    elec = Contribution(0.0, KB_HARTREE * math.log(int(multiplicity)), 0.0)
    parts = (trans, rot, vib, elec)
    zpve = 0.5 * float(real.sum()) / HARTREE_WAVENUMBER
    energy = float(energy_hartree)
    u = energy + sum(p.u_hartree for p in parts)
    s = sum(p.s_hartree_k for p in parts)
    h = u + kt
    return Thermochemistry(
        temperature_k=float(temperature_k), pressure_pa=float(pressure_pa),
        energy_hartree=energy, zpve_hartree=zpve, u0_hartree=energy + zpve, u_hartree=u,
        h_hartree=h,
        g_hartree=h - temperature_k * s, s_hartree_k=s,
        cv_hartree_k=sum(p.cv_hartree_k for p in parts),
        rotational_constants_ghz=tuple(float(v) for v in rotational_constants_ghz(m, x)),
        rotor=rotor, symmetry_number=sigma, multiplicity=int(multiplicity),
        n_modes_used=int(real.size), n_imaginary_left_out=int(freqs.size - real.size),
        translational=trans, rotational=rot, vibrational=vib, electronic=elec)


# -- free atoms and atomization energies ----------------------------------------------------
def free_atom_thermo(energy_hartree: float, z: int, *, multiplicity: int | None = None,
                     temperature_k: float = DEFAULT_TEMPERATURE_K,
                     pressure_pa: float = STANDARD_ATMOSPHERE_PA) -> Thermochemistry:
    """A free atom's E, U0 (= E), U, H, G from its electronic energy alone (Hartree): the
    translational term and the electronic degeneracy of its ground-state spin multiplicity
    (default :data:`GROUND_STATE_MULTIPLICITY`, the multiplicity the engine must compute the
    atom's energy at). Element z (atomic number)."""
    mult = GROUND_STATE_MULTIPLICITY[int(z)] if multiplicity is None else int(multiplicity)
    return thermochemistry(energy_hartree, [int(z)], np.zeros((1, 3)), [], multiplicity=mult,
                           temperature_k=temperature_k, pressure_pa=pressure_pa)


#: the atomization energies at any temperature: name -> the Thermochemistry field it differs in
ATOMIZATION_FIELDS = {"u0_atom_hartree": "u0_hartree", "u_atom_hartree": "u_hartree",
                      "h_atom_hartree": "h_hartree", "g_atom_hartree": "g_hartree"}
#: QM9's atomization labels (kcal/mol, at 298.15 K and 1 atm) -> the typed name
QM9_ATOMIZATION = {"u0_atom": "u0_atom_hartree", "u298_atom": "u_atom_hartree",
                   "h298_atom": "h_atom_hartree", "g298_atom": "g_atom_hartree"}


def atomization_energies_hartree(molecule: Thermochemistry, numbers,
                                 free_atoms: Mapping[int, Thermochemistry]) -> dict:
    """The molecule's U0, U, H, G minus the sum of its free atoms' (Hartree, negative for a bound
    molecule), at the molecule's temperature and pressure: :data:`ATOMIZATION_FIELDS`.
    numbers: the molecule's atomic numbers; free_atoms: atomic number -> :func:`free_atom_thermo`
    at the same level, temperature and pressure (KeyError naming a missing element, ValueError
    for other conditions)."""
    z = [int(v) for v in np.asarray(numbers).reshape(-1)]
    missing = sorted(set(z) - set(free_atoms))
    if missing:
        raise KeyError(f"no free-atom reference for Z={', '.join(map(str, missing))}")
    for atom in free_atoms.values():
        if abs(atom.temperature_k - molecule.temperature_k) > 1e-9 or \
                abs(atom.pressure_pa - molecule.pressure_pa) > 1e-6:
            raise ValueError("free atoms and molecule are at different temperature or pressure")
    return {name: getattr(molecule, field) - sum(getattr(free_atoms[v], field) for v in z)
            for name, field in ATOMIZATION_FIELDS.items()}


def atomization_energies(molecule: Thermochemistry, numbers,
                         free_atoms: Mapping[int, Thermochemistry]) -> dict:
    """QM9's atomization labels u0_atom, u298_atom, h298_atom, g298_atom in kcal/mol:
    :func:`atomization_energies_hartree` at 298.15 K and 1 atm (ValueError at other
    conditions), converted."""
    typed = atomization_energies_hartree(molecule, numbers, free_atoms)
    _check_qm9_conditions(molecule)
    return {label: typed[name] * HARTREE_KCALMOL for label, name in QM9_ATOMIZATION.items()}


def free_atom_molecule(z: int, name: str = ""):
    """The :class:`hessflow.qm.molecules.molecule.Molecule` of a free neutral atom of element z (atomic
    number) in its ground-state multiplicity, for an engine's single point."""
    return Molecule(name or f"atom_{symbol(z)}", [int(z)], np.zeros((1, 3)),
                    multiplicity=GROUND_STATE_MULTIPLICITY[int(z)])


def record_thermochemistry(record: dict, settings: ThermoSettings | None = None,
                           **kwargs) -> Thermochemistry | None:
    """The thermochemistry of a stored record, derived from what it holds (the Hessian's
    frequencies at the optimised geometry, the electronic energy, masses and multiplicity), as
    the harmonic analysis is: nothing of it is stored. ``settings``: where to evaluate it
    (:class:`ThermoSettings`; default 298.15 K, 1 atm); ``kwargs``: keyword arguments of
    :func:`thermochemistry` given instead or on top (temperature_k, symmetry_number, ...).
    None when the record has no frequencies or no energy."""
    freqs = record.get("frequencies_cm1")
    energy = record.get("energy_hartree")
    if freqs is None or energy is None or not math.isfinite(float(energy)):
        return None
    coords = record.get("coords_opt_bohr")
    if coords is None:
        coords = record.get("coords_input_bohr")
    options = {**(settings.kwargs() if settings is not None else {}), **kwargs}
    return thermochemistry(float(energy), record["numbers"], coords, freqs,
                           multiplicity=int(record.get("multiplicity") or 1),
                           masses_amu=record.get("masses_amu"), **options)


def record_atomization_energies(record: dict, atom_energies: Mapping[int, float],
                                settings: ThermoSettings | None = None) -> dict | None:
    """:func:`atomization_energies_hartree` of a stored record against free-atom electronic
    energies ``atom_energies`` ({Z: Hartree}, the same level, e.g.
    :func:`hessflow.qm.atom_references.free_atom_energies`), each atom with its own
    translational and electronic terms at ``settings``' temperature and pressure. None when the
    record has no thermochemistry (:func:`record_thermochemistry`) or an element has no
    reference."""
    molecule = record_thermochemistry(record, settings)
    z = {int(v) for v in np.asarray(record["numbers"]).reshape(-1)}
    if molecule is None or not z <= set(atom_energies):
        return None
    conditions = {"temperature_k": molecule.temperature_k, "pressure_pa": molecule.pressure_pa}
    atoms = {v: free_atom_thermo(float(atom_energies[v]), v, **conditions) for v in z}
    return atomization_energies_hartree(molecule, record["numbers"], atoms)
