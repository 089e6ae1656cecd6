"""psi4 (1.3.x, e.g. Debian's ``apt-get install psi4``), run out of process.

Why out of process
    Debian's psi4 is built for Debian's own ``/usr/bin/python3`` and its numpy < 2; it cannot be
    imported into hessflow's interpreter. Each call writes a JSON job to a temporary directory and
    runs ``<psi4's python> psi4_runner.py job.json out.json`` there (the runner is pure stdlib +
    psi4 + numpy and does not import hessflow). The child gets a clean environment: hessflow's
    virtual environment is removed from PATH/PYTHONPATH/VIRTUAL_ENV, ``PYTHONPATH`` points at
    psi4's own library directory, ``OPENBLAS_NUM_THREADS=1`` (psi4 threads through OpenMP; a
    threaded OpenBLAS underneath makes finite-difference frequencies ~4x slower), ``OMP_NUM_THREADS``
    = the thread count, ``PSI_SCRATCH`` = the temporary directory, ``PSIPATH`` = the shipped basis
    directory.

How each quantity is computed (atomic units, see :mod:`.base`)
    * energy, dipole (at the origin of the input frame), HOMO/LUMO: one SCF;
    * gradient: ``psi4.gradient`` (analytic), one more run;
    * optimisation: psi4's optking with analytic gradients, ``g_convergence`` =
      ``level.opt_convergence`` (``"GAU"`` -> ``gau``: Gaussian's criteria), ``geom_maxiter`` =
      ``level.opt_max_steps``, initial ``intrafrag_step_limit`` = ``level.opt_trust_radius_bohr``
      (Angstrom, as in geomeTRIC) in Bohr;
    * Hessian: ``psi4.hessian(dertype=1)``, 3-point finite differences of analytic gradients
      (psi4's 0.005 displacement) with ``fd_project false`` (translations are projected out,
      rotations are not, so it is the Hessian at this geometry even away from a stationary point);
    * alpha: closed shell -> psi4's analytic CPSCF (``properties(...,
      properties=['DIPOLE_POLARIZABILITIES'])``, which psi4 1.3.2 does support for RKS);
      open shell (UHF/UKS, no CPSCF in psi4 1.3.2) -> central differences of the SCF dipole under
      a uniform field (step :data:`ALPHA_FIELD_STEP_AU`);
    * beta: central differences of alpha under a uniform field,
      ``beta_ijk = (alpha_ij(+h e_k) - alpha_ij(-h e_k)) / 2h`` with ``h = level.field_step_au``,
      all six fields in one psi4 run. The field adds +F.r to the electronic Hamiltonian
      (dipole grows by +alpha.F); the runner applies it as psi4's ``perturb_dipole = -F``.

Level -> psi4
    method: ``hf``/``rhf``/``uhf``/``scf`` -> ``scf``, anything else is passed as psi4's
    functional name (psi4's ``b3lyp`` is the VWN1-RPA B3LYP of Gaussian and PySCF >= 2.3).
    reference: ``rhf``/``rks`` for multiplicity 1, ``uhf``/``uks`` otherwise. basis: as named;
    hessflow's shipped basis files (:mod:`hessflow.qm.basis_library`: Gaussian's 6-31G(2df,p),
    which psi4 1.3.2 lacks, and BSE's) are found through ``PSIPATH``, as PySCF reads them.
    ``puream`` only for ``shells: 5d7f``: psi4 sets one convention for all shells, so Gaussian's
    "6d7f" (Cartesian d, pure f) runs as Cartesian d and f ("6d10f",
    :meth:`~hessflow.qm.engines.base.Engine.shells_run`, and so keyed). ``scf_type pk`` (exact
    integrals, no density fitting), ``symmetry c1``, ``no_reorient``, ``no_com``.
    Convergence: ``e_convergence`` = ``conv_tol``, ``d_convergence`` = ``100 * conv_tol`` (clamped
    to [1e-10, 1e-6]), CPSCF ``solver_convergence`` likewise.
    Grid (DFT): ``"R,S"`` -> ``dft_radial_points R``, ``dft_spherical_points S``, no pruning
    (``dft_pruning_scheme flat``). An integer level L uses PySCF's tables for level L (the
    radial and Lebedev counts PySCF gives each element's row), taking the largest over the
    molecule's atoms, unpruned -- psi4 uses one atomic grid for all atoms. E.g. level 3 for CHNO:
    (75, 302) (= psi4's own default); level 4: (90, 590).
    ``max_cycle`` -> ``maxiter``; ``damping`` (fraction) -> ``damping_percentage``;
    ``level_shift`` -> ``level_shift``; ``soscf`` -> ``soscf``; ``memory_mb`` -> psi4 memory;
    ``threads`` (0 = all cores this process may use) -> ``psi4.set_num_threads``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ...errors import EngineError
from .. import basis_library
from ..level import Level
from ..molecules.molecule import Molecule
from .base import Engine, OptResult, SinglePoint

RUNNER = str(Path(__file__).resolve().parent / "psi4_runner.py")
BASIS_DIR = str(basis_library.BASIS_DIR)

#: field step (a.u.) for the open-shell finite-field alpha fallback (central differences of mu)
ALPHA_FIELD_STEP_AU = 1e-3

#: optking's g_convergence sets (the same names geomeTRIC uses)
OPTKING_CONVERGENCE = ("qchem", "molpro", "gau", "gau_loose", "gau_tight", "gau_verytight",
                       "turbomole", "cfour", "nwchem_loose", "interfrag_tight")

# PySCF's dft.gen_grid tables (radial points and Lebedev point counts per level 0-9 and per row of
# the periodic table 1-7), used to turn an integer grid level into one unpruned psi4 grid.
_ROW_BOUNDS = (2, 10, 18, 36, 54, 86, 118)
_RAD = ((10, 15, 20, 30, 35, 40, 50), (30, 40, 50, 60, 65, 70, 75), (40, 60, 65, 75, 80, 85, 90),
        (50, 75, 80, 90, 95, 100, 105), (60, 90, 95, 105, 110, 115, 120),
        (70, 105, 110, 120, 125, 130, 135), (80, 120, 125, 135, 140, 145, 150),
        (90, 135, 140, 150, 155, 160, 165), (100, 150, 155, 165, 170, 175, 180),
        (200, 200, 200, 200, 200, 200, 200))
_ANG = ((50, 86, 110, 110, 110, 110, 110), (110, 194, 194, 194, 194, 194, 194),
        (194, 302, 302, 302, 302, 302, 302), (302, 302, 434, 434, 434, 434, 434),
        (434, 590, 590, 590, 590, 590, 590), (590, 770, 770, 770, 770, 770, 770),
        (770, 974, 974, 974, 974, 974, 974), (974, 1202, 1202, 1202, 1202, 1202, 1202),
        (1202, 1202, 1202, 1202, 1202, 1202, 1202), (1454, 1454, 1454, 1454, 1454, 1454, 1454))


def grid_points(level: Level, numbers) -> tuple[int, int]:
    """(radial, spherical) psi4 grid for ``level.grid`` (see the module docstring)."""
    explicit = level.grid_points
    if explicit:
        return explicit
    try:
        lv = int(level.grid)
    except (TypeError, ValueError):
        raise EngineError(f"psi4: grid {level.grid!r} is neither a level 0-9 nor 'R,S'") from None
    if not 0 <= lv <= 9:
        raise EngineError(f"psi4: grid level {lv} is not in 0-9")
    rows = [sum(int(z) > b for b in _ROW_BOUNDS) for z in numbers]
    return max(_RAD[lv][r] for r in rows), max(_ANG[lv][r] for r in rows)


def _clamp(x: float, lo: float, hi: float) -> float:
    return float(min(max(x, lo), hi))


#: ((psi4's python, its library dir, why not usable), version) per cleaned PATH: finding psi4 costs
#: two child interpreters, so it is done once per process, not once per engine instance.
_LOCATE_CACHE: dict = {}


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class Psi4Engine(Engine):
    name = "psi4"
    methods = {"sp": "analytic", "opt": "optking + analytic gradients",
               "freq": "finite differences of analytic gradients",
               "polar": "analytic (CPSCF); open shell: finite field of the dipole",
               "hyperpolar": "finite field of alpha"}
    shell_conventions = ("5d7f", "6d10f")  # one puream for all shells: no 6D 7F

    def __init__(self):
        self._found = None       # (python, libdir, why)
        self._version = None

    # -- locating psi4 ---------------------------------------------------------------------
    def _locate(self):
        if self._found is not None:
            return self._found
        key = self._clean_path()
        if key not in _LOCATE_CACHE:
            _LOCATE_CACHE[key] = (self._find(), self._version)
        self._found, self._version = _LOCATE_CACHE[key]
        return self._found

    def _find(self):
        exe = shutil.which("psi4", path=self._clean_path())
        if exe is None:
            return (None, None, "psi4 executable not found on PATH (Debian: apt-get install psi4)")
        python = "/usr/bin/python3"
        try:
            with open(exe, "rb") as fh:
                first = fh.readline().decode(errors="replace").strip()
            if first.startswith("#!"):
                cand = first[2:].strip().split()[0]
                if os.path.basename(cand) != "env" and os.access(cand, os.X_OK):
                    python = cand
        except OSError:
            pass
        libdir = ""
        try:
            res = subprocess.run([python, exe, "--psiapi-path"], capture_output=True, text=True,
                                 timeout=120, env=self._env(None, 1, ""))
            for line in res.stdout.splitlines():
                if line.startswith("export PYTHONPATH="):
                    libdir = line.split("=", 1)[1].split(":")[0].rstrip("/") or ""
        except (OSError, subprocess.SubprocessError):
            pass
        try:
            res = subprocess.run([python, "-c", "import psi4, sys; sys.stdout.write(psi4.__version__)"],
                                 capture_output=True, text=True, timeout=300,
                                 env=self._env(None, 1, libdir))
        except (OSError, subprocess.SubprocessError) as exc:
            return (None, None, f"cannot run {python} for psi4: {exc}")
        if res.returncode != 0:
            err = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
            return (None, None, f"{python} cannot import psi4 ({exe}): "
                                f"{err[-1] if err else 'exit status %d' % res.returncode}")
        self._version = res.stdout.strip()
        return (python, libdir, None)

    @staticmethod
    def _clean_path() -> str:
        """PATH without hessflow's virtual environment (or any other active venv)."""
        venvs = {os.path.realpath(p) for p in (sys.prefix, os.environ.get("VIRTUAL_ENV", "")) if p}
        venvs.discard(os.path.realpath(sys.base_prefix))
        keep = []
        for p in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep):
            rp = os.path.realpath(p) if p else ""
            if p and not any(rp == v or rp.startswith(v + os.sep) for v in venvs):
                keep.append(p)
        for p in ("/usr/bin", "/bin"):
            if p not in keep:
                keep.append(p)
        return os.pathsep.join(keep)

    def _env(self, tmpdir, threads: int, libdir: str) -> dict:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP",
                            "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__")}
        env["PATH"] = self._clean_path()
        env["PYTHONNOUSERSITE"] = "1"
        if libdir:
            env["PYTHONPATH"] = libdir
            env["HESSFLOW_PSI4_LIBDIR"] = libdir
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["MKL_NUM_THREADS"] = "1"
        env["OMP_NUM_THREADS"] = str(int(threads))
        env["PSIPATH"] = BASIS_DIR + (os.pathsep + env["PSIPATH"] if env.get("PSIPATH") else "")
        if tmpdir:
            env["PSI_SCRATCH"] = str(tmpdir)
        return env

    def why_not_found(self):
        return self._locate()[2]

    def version(self):
        python, _, why = self._locate()
        if why:
            raise EngineError(f"psi4: {why}")
        return self._version

    # -- one out-of-process job ----------------------------------------------------------------
    def level_for_key(self, level: Level) -> dict:
        """The base class's key without ``response_grid``: psi4 solves its CPKS on the SCF grid
        whatever that setting says (it has no separate response grid), so it keys what it ran."""
        return super().level_for_key(level.replace(response_grid=None))

    def _job(self, mol: Molecule, level: Level, task: str, **extra) -> dict:
        if level.density_fit is not None:  # a PySCF-engine setting, not run here
            raise EngineError(f"{mol.name}: level.density_fit is a PySCF-engine setting; the "
                              f"psi4 engine runs exact integrals (scf_type pk; unset it)")
        method = level.method
        hf = level.is_hf
        open_shell = int(mol.multiplicity) > 1 or method == "uhf"
        if hf:
            ref = "uhf" if open_shell else "rhf"
        else:
            ref = "uks" if open_shell else "rks"
        tol = float(level.conv_tol)
        threads = int(level.threads) if int(level.threads) > 0 else _cpu_count()
        job = {
            "name": mol.name,
            "task": task,
            "symbols": list(mol.symbols),
            "numbers": [int(z) for z in mol.numbers],
            "coords_bohr": np.asarray(mol.coords_bohr, float).tolist(),
            "charge": int(mol.charge),
            "multiplicity": int(mol.multiplicity),
            "method": "scf" if hf else method,
            "reference": ref,
            "basis": level.basis,
            "puream": self.shells_run(level) == "5d7f",
            "grid": None if hf else list(grid_points(level, mol.numbers)),
            "e_convergence": tol,
            "d_convergence": _clamp(100.0 * tol, 1e-10, 1e-6),
            "solver_convergence": _clamp(100.0 * tol, 1e-10, 1e-6),
            "maxiter": int(level.max_cycle),
            "damping": float(level.damping),
            "level_shift": float(level.level_shift),
            "soscf": bool(level.soscf),
            "threads": threads,
            "memory_mb": max(256, int(level.memory_mb)),
            "alpha_field_step": ALPHA_FIELD_STEP_AU,
            "output_file": "psi4.out",
        }
        job.update(extra)
        return job

    def _run(self, mol: Molecule, level: Level, task: str, **extra) -> dict:
        python, libdir, why = self._locate()
        if why:
            raise EngineError(f"{mol.name}: psi4 is not usable here: {why}")
        job = self._job(mol, level, task, **extra)
        with tempfile.TemporaryDirectory(prefix="hessflow-psi4-") as tmp:
            jpath, opath = os.path.join(tmp, "job.json"), os.path.join(tmp, "out.json")
            with open(jpath, "w") as fh:
                json.dump(job, fh)
            try:
                res = subprocess.run([python, RUNNER, jpath, opath], cwd=tmp, capture_output=True,
                                     text=True, env=self._env(tmp, job["threads"], libdir))
            except OSError as exc:
                raise EngineError(f"{mol.name}: psi4 {task}: cannot start {python}: {exc}") from exc
            if not os.path.exists(opath):
                tail = [ln for ln in (res.stderr or res.stdout or "").strip().splitlines() if ln.strip()]
                raise EngineError(f"{mol.name}: psi4 {task} died (exit status {res.returncode}): "
                                  f"{tail[-1] if tail else 'no output'}")
            with open(opath) as fh:
                out = json.load(fh)
        if not out.get("ok"):
            last = out.get("last_coords_bohr")
            if last is not None:
                last = np.asarray(last, float).reshape(mol.natoms, 3)
            raise EngineError(f"{mol.name}: psi4 {task} failed: {out.get('error', '?')}",
                              kind=out.get("kind", "engine"), last_coords_bohr=last)
        self._version = out.get("psi4_version", self._version)
        return out

    # -- Engine faces ---------------------------------------------------------------------------
    def single_point(self, mol: Molecule, level: Level) -> SinglePoint:
        out = self._run(mol, level, "energy")
        return SinglePoint(energy_hartree=float(out["energy"]),
                           dipole_au=np.asarray(out["dipole"], float),
                           homo_hartree=float(out["homo"]), lumo_hartree=float(out["lumo"]))

    def gradient(self, mol: Molecule, level: Level) -> np.ndarray:
        out = self._run(mol, level, "gradient")
        g = np.asarray(out["gradient"], float)
        if g.shape != (mol.natoms, 3):
            raise EngineError(f"{mol.name}: psi4 gradient has shape {g.shape}, "
                              f"expected {(mol.natoms, 3)}")
        return g

    def optimize(self, mol: Molecule, level: Level) -> OptResult:
        conv = str(level.opt_convergence).strip().lower()
        if conv not in OPTKING_CONVERGENCE:
            raise EngineError(f"{mol.name}: psi4 optking has no convergence set "
                              f"{level.opt_convergence!r} (use one of "
                              f"{', '.join(c.upper() for c in OPTKING_CONVERGENCE)})", kind="engine")
        opt = {"g_convergence": conv, "max_steps": int(level.opt_max_steps),
               "step_limit_bohr": float(level.opt_trust_radius_bohr)}
        out = self._run(mol, level, "optimize", opt=opt)
        coords = np.asarray(out["coords_bohr"], float).reshape(mol.natoms, 3)
        return OptResult(coords_bohr=coords, energy_hartree=float(out["energy"]),
                         n_steps=int(out["n_steps"]))

    def hessian(self, mol: Molecule, level: Level) -> np.ndarray:
        out = self._run(mol, level, "hessian")
        H = np.asarray(out["hessian"], float)
        n3 = 3 * mol.natoms
        if H.shape != (n3, n3):
            raise EngineError(f"{mol.name}: psi4 Hessian has shape {H.shape}, expected {(n3, n3)}")
        return 0.5 * (H + H.T)

    def polarizability(self, mol: Molecule, level: Level) -> np.ndarray:
        out = self._run(mol, level, "polarizability")
        self.last_alpha_method = out.get("alpha_method", "")
        return np.asarray(out["alpha"], float).reshape(3, 3)

    def field_polarizabilities(self, mol: Molecule, level: Level, fields) -> np.ndarray:
        """alpha (Bohr^3) at each uniform field in ``fields`` ((m, 3), a.u.): shape (m, 3, 3)."""
        fields = np.asarray(fields, float).reshape(-1, 3)
        out = self._run(mol, level, "field_polarizability", fields=fields.tolist())
        self.last_alpha_method = out.get("alpha_method", "")
        return np.asarray(out["alphas"], float).reshape(len(fields), 3, 3)

    def hyperpolarizability(self, mol: Molecule, level: Level) -> np.ndarray:
        h = float(level.field_step_au)
        if not h > 0:
            raise EngineError(f"{mol.name}: field_step_au must be > 0 (got {h})")
        fields = []
        for k in range(3):
            for s in (1.0, -1.0):
                f = [0.0, 0.0, 0.0]
                f[k] = s * h
                fields.append(f)
        alphas = self.field_polarizabilities(mol, level, fields)
        beta = np.empty((3, 3, 3))
        for k in range(3):
            beta[:, :, k] = (alphas[2 * k] - alphas[2 * k + 1]) / (2.0 * h)
        return beta
