"""GPU4PySCF engine: the PySCF engine's route, run on an NVIDIA GPU.

GPU4PySCF (the PySCF project's CUDA plugin, ``gpu4pyscf-cuda12x`` on PyPI, the ``[gpu]`` extra)
gives SCF, analytic gradients, analytic Hessians and CPKS polarizabilities on the GPU for the
same PySCF ``Mole``. :class:`Gpu4pyscfEngine` is :class:`~.pyscf_engine.PyscfEngine` with its
mean field moved to the GPU, so both engines share every setting and every step of the route:

* the mean field is the PySCF engine's own (functional, grid, convergence, damping, level
  shift, SOSCF), converted with PySCF's ``to_gpu()``; PySCF's CPHF tolerance
  (``conv_tol_cpscf`` 1e-8, GPU4PySCF's default is 1e-6) is carried over;
* optimisation: geomeTRIC through PySCF's ``geometric_solver`` with GPU4PySCF gradients (the
  route GPU4PySCF documents);
* Hessian: GPU4PySCF's analytic Hessian. Its CPHF/XC-kernel terms use, by default
  (``cphf_grid="scf"``), the SCF grid, as PySCF does; ``cphf_grid="sg1"`` keeps GPU4PySCF's own
  choice, the SG-1 (50, 194) grid that Gaussian uses for CPKS (cheaper, changes the numbers);
* alpha: ``gpu4pyscf.properties.polarizability.eval_polarizability`` (analytic CPKS; closed
  shells). Open shells, which it does not support, run pyscf-properties on the CPU copy of the
  converged GPU mean field (``to_cpu()``);
* beta: the PySCF engine's central finite field of analytic alpha, the field-perturbed SCFs on
  the GPU.

Density fitting (``auxbasis``, e.g. ``"def2-universal-jkfit"``), GPU4PySCF's fastest mode,
is off by default; it changes the numbers, so it is part of :meth:`level_for_key`.

Where DFT runs is the *device setting* ``auto | cpu | cuda`` (:class:`GpuSettings`):
:func:`resolve_device` turns it into ``"cuda"`` or ``"cpu"`` (``auto``: CUDA when usable, else the
CPU with a one-line note; ``cuda`` without a usable GPU: a one-line error) and
:func:`engine_for_device` gives the matching engine. Atomic units throughout (see :mod:`.base`).
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

from ...errors import EngineNotFound
from ...settings import did_you_mean, from_mapping, meta, settings_error
from ..level import Level
from ..molecules.molecule import Molecule
from .base import Engine, SinglePoint
from .pyscf_common import apply_uniform_field, frontier_orbitals
from .pyscf_engine import PyscfEngine
from .pyscf_extras import electronic_spatial_extent

__all__ = ["Gpu4pyscfEngine", "GpuSettings", "DEVICES", "CPHF_GRIDS", "cuda_unavailable_reason",
           "resolve_device", "engine_for_device", "engine_from_settings", "ENGINE"]

DEVICES = ("auto", "cpu", "cuda")
CPHF_GRIDS = ("scf", "sg1")
INSTALL_HINT = "pip install -e '.[gpu]'"
#: CPKS convergence of alpha, as pyscf-properties' default (its ``conv_tol``)
ALPHA_CPHF_TOL = 1e-9
ALPHA_CPHF_MAX_CYCLE = 50


def _line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _device_reason() -> str | None:
    """Why cupy sees no CUDA device (cupy importable), or None when it sees one."""
    import cupy
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, no device, driver too old
        return f"no CUDA device: {_line(exc)}"
    if n < 1:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return "no CUDA device visible" + (f" (CUDA_VISIBLE_DEVICES={visible!r})"
                                           if visible is not None else "")
    return None


def cuda_unavailable_reason() -> str | None:
    """None when GPU4PySCF can run here, else one line saying why not: gpu4pyscf or cupy not
    installed, a cupy import error, no CUDA device (driver, ``CUDA_VISIBLE_DEVICES``), or a
    gpu4pyscf import error."""
    try:
        import gpu4pyscf  # noqa: F401  (imports cupy and asks it for device 0)
        from gpu4pyscf.properties import polarizability  # noqa: F401
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in ("gpu4pyscf", "cupy"):
            return f"{missing} is not installed (the [gpu] extra: {INSTALL_HINT})"
        return f"gpu4pyscf import error: {_line(exc)}"
    except Exception as exc:
        try:
            why = _device_reason()
        except Exception as cupy_exc:
            return f"cupy import error: {_line(cupy_exc)}"
        return why or f"gpu4pyscf import error: {_line(exc)}"
    return _device_reason()


def _note(message: str):
    print(f"note: {message}", file=sys.stderr)


def resolve_device(requested: str | None = "auto", note=None) -> str:
    """``"cuda"`` or ``"cpu"`` for the device setting ``requested`` (``auto``, ``cpu``,
    ``cuda``; None or "" mean ``auto``).

    ``auto`` picks CUDA when GPU4PySCF can run here, else the CPU, telling ``note`` (a callable
    taking one line; default: stderr) why. ``cuda`` without a usable GPU raises
    :class:`~hessflow.errors.EngineNotFound` with one line; any other value raises
    :class:`~hessflow.errors.SettingsError` (``device: ...``)."""
    name = "auto" if requested in (None, "") else str(requested).strip().lower()
    if name not in DEVICES:
        hint = (" (did you mean 'cuda'?)" if name.startswith(("gpu", "cuda", "nvidia"))
                else did_you_mean(name, DEVICES))
        raise settings_error("device", f"{requested!r} is not one of {' | '.join(DEVICES)}{hint}")
    if name == "cpu":
        return "cpu"
    why = cuda_unavailable_reason()
    if why is None:
        return "cuda"
    if name == "cuda":
        raise EngineNotFound(f"device cuda: GPU DFT is not usable here: {why}")
    (note or _note)(f"device auto: {why}; DFT runs on the CPU (pyscf engine)")
    return "cpu"


@dataclasses.dataclass
class GpuSettings:
    """Where DFT runs and the GPU engine's own choices (a YAML mapping, e.g. ``engine_options``)."""

    device: str = dataclasses.field(default="auto", metadata=meta(
        "where DFT runs: auto (CUDA when gpu4pyscf and a GPU are usable, else the CPU), cpu, cuda",
        choices=DEVICES))
    cphf_grid: str = dataclasses.field(default="scf", metadata=meta(
        "grid of the Hessian's CPHF/XC-kernel terms on the GPU: scf (the SCF grid, as the CPU "
        "engine) or sg1 (GPU4PySCF's default SG-1 (50,194) grid, cheaper, other numbers)",
        choices=CPHF_GRIDS))
    auxbasis: str | None = dataclasses.field(default=None, metadata=meta(
        "density fitting on the GPU with this auxiliary basis (e.g. def2-universal-jkfit); "
        "none: exact four-centre integrals, as the CPU engine"))


class Gpu4pyscfEngine(PyscfEngine):
    """The PySCF engine on a CUDA GPU through GPU4PySCF (see the module docstring).

    ``cphf_grid``: ``"scf"`` or ``"sg1"``; ``auxbasis``: None or a PySCF auxiliary basis name."""

    name = "gpu4pyscf"
    methods = {"sp": "analytic (GPU)", "opt": "geomeTRIC + analytic gradients (GPU)",
               "freq": "analytic Hessian (GPU)",
               "polar": "analytic (CPKS, gpu4pyscf.properties; open shells: pyscf-properties on CPU)",
               "hyperpolar": "finite field of analytic alpha (GPU)"}
    #: the CPU engine's 6D 7F restriction (:func:`.pyscf_common.use_mixed_shells`) replaces a
    #: method of the CPU mean field, which ``to_gpu`` does not carry over: Gaussian's "6d7f"
    #: runs as "6d10f" here (keyed so) until it is done and checked on a GPU
    shell_conventions = ("5d7f", "6d10f")

    def __init__(self, cphf_grid: str = "scf", auxbasis: str | None = None):
        super().__init__()
        if cphf_grid not in CPHF_GRIDS:
            raise settings_error("cphf_grid", f"{cphf_grid!r} is not one of {' | '.join(CPHF_GRIDS)}")
        self.cphf_grid = cphf_grid
        self.auxbasis = auxbasis or None
        self._pending_field = None

    def why_not_found(self):
        return cuda_unavailable_reason() or super().why_not_found()

    def version(self):
        import gpu4pyscf
        import pyscf
        return f"{gpu4pyscf.__version__} (pyscf {pyscf.__version__})"

    def level_for_key(self, level: Level) -> dict:
        d = super().level_for_key(level)
        if self.cphf_grid != "scf":
            d["cphf_grid"] = self.cphf_grid
        if self.auxbasis:
            d["auxbasis"] = self.auxbasis
        return d

    # -- building blocks: the PySCF engine's, moved to the GPU ------------------------------
    def _new_mf(self, pmol, level: Level, restricted: bool):
        if level.response_grid not in (None, "sg1"):  # GPU4PySCF's cphf_grids: SCF or SG-1
            raise settings_error("level.response_grid", f"{level.response_grid!r}: the gpu4pyscf "
                                 "engine runs the Hessian's CPHF on the SCF grid or on SG-1 "
                                 "(response_grid sg1, or its cphf_grid)")
        if level.density_fit and self.auxbasis:
            raise settings_error("level.density_fit", "give density_fit or the GPU auxbasis, "
                                 "not both")
        import cupy
        mf = super()._new_mf(pmol, level, restricted)
        if self.auxbasis:
            mf = (mf.undo_soscf().density_fit(auxbasis=self.auxbasis).newton() if level.soscf
                  else mf.density_fit(auxbasis=self.auxbasis))
        conv_tol_cpscf = mf.conv_tol_cpscf
        mf = mf.to_gpu()
        mf.verbose = 0
        mf.conv_tol_cpscf = conv_tol_cpscf
        cphf = "sg1" if level.response_grid == "sg1" else self.cphf_grid
        if cphf == "scf" and hasattr(mf, "cphf_grids"):
            mf.cphf_grids = mf.grids  # one grid object: reset and built with the SCF grid
        if self._pending_field is not None:
            apply_uniform_field(mf, pmol, self._pending_field, asarray=cupy.asarray)
        return mf

    def _scf(self, mol: Molecule, level: Level, field_au=None, dm0=None):
        """The base class's cached SCF. A field is put in by :meth:`_new_mf` (the base class adds
        a NumPy F.r to the core Hamiltonian, which CuPy refuses); the base class then sees a
        field-free SCF, so its cache entry (keyed without the field) is restored afterwards."""
        if field_au is None:
            return super()._scf(mol, level, dm0=dm0)
        saved = self._cache_key, self._cache_mf
        self._cache_key, self._pending_field = None, np.asarray(field_au, float)
        try:
            return super()._scf(mol, level, dm0=dm0)
        finally:
            self._pending_field = None
            self._cache_key, self._cache_mf = saved

    def _alpha(self, mf):
        return _GpuPolarizability(self, mf)

    # -- the Engine faces the base class's code cannot serve (CuPy arrays) ------------------
    def single_point(self, mol: Molecule, level: Level) -> SinglePoint:
        import cupy
        mf = self._scf(mol, level)
        dip = mf.dip_moment(unit="AU", verbose=0)  # GPU4PySCF evaluates it on the host
        homo, lumo = frontier_orbitals(cupy.asnumpy(mf.mo_energy), cupy.asnumpy(mf.mo_occ))
        return SinglePoint(float(mf.e_tot), np.asarray(dip, float), homo, lumo,
                           r2_bohr2=electronic_spatial_extent(mf.mol, cupy.asnumpy(mf.make_rdm1())))


class _GpuPolarizability:
    """The two methods :class:`PyscfEngine` asks of a polarizability object, for a GPU mean
    field: alpha by GPU4PySCF's CPKS (closed shells), else by pyscf-properties on a CPU copy."""

    def __init__(self, engine: Gpu4pyscfEngine, mf):
        self.engine, self.mf = engine, mf

    def _cpu(self):
        return PyscfEngine._alpha(self.engine, self.mf.to_cpu())

    def polarizability(self) -> np.ndarray:
        """(3, 3) static alpha, Bohr^3."""
        from gpu4pyscf.properties import polarizability
        from gpu4pyscf.scf import hf
        if not isinstance(self.mf, hf.RHF):  # UHF/UKS: not in gpu4pyscf.properties
            return np.asarray(self._cpu().polarizability(), float)
        return np.asarray(polarizability.eval_polarizability(
            self.mf, max_cycle=ALPHA_CPHF_MAX_CYCLE, tol=ALPHA_CPHF_TOL), float)

    def hyper_polarizability(self) -> np.ndarray:
        """pyscf-properties' analytic beta (a.u.) on the CPU copy (GPU4PySCF has none)."""
        return np.asarray(self._cpu().hyper_polarizability(), float)


def engine_for_device(requested: str | None = "auto", note=None, cphf_grid: str = "scf",
                      auxbasis: str | None = None) -> Engine:
    """The engine for a device setting: :class:`Gpu4pyscfEngine` (with ``cphf_grid`` and
    ``auxbasis``) where :func:`resolve_device` gives ``"cuda"``, else the PySCF CPU engine."""
    if resolve_device(requested, note) == "cuda":
        return Gpu4pyscfEngine(cphf_grid=cphf_grid, auxbasis=auxbasis)
    return PyscfEngine()


def engine_from_settings(mapping=None, where: str = "engine_options", note=None) -> Engine:
    """:func:`engine_for_device` from a user mapping checked as :class:`GpuSettings` (unknown
    keys and bad values: one-line :class:`~hessflow.errors.SettingsError` at ``where``)."""
    s = from_mapping(GpuSettings, mapping, where)
    return engine_for_device(s.device, note, cphf_grid=s.cphf_grid, auxbasis=s.auxbasis)


ENGINE = Gpu4pyscfEngine
