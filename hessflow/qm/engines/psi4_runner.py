"""Run one psi4 job out of process:  python3 psi4_runner.py job.json out.json

Started by :mod:`hessflow.qm.engines.psi4_engine` with the Python psi4 was built for (Debian's
/usr/bin/python3 with its numpy < 2), never inside hessflow's own interpreter. This file must
therefore stay standard library + psi4 + numpy (1.x and 2.x alike) and must not import hessflow.

The job (JSON, atomic units) names the molecule, the fully resolved psi4 settings and a task:

* ``energy``               energy, dipole (e*Bohr, at the origin of the input frame), HOMO/LUMO
* ``gradient``             analytic gradient (n, 3), Hartree/Bohr, and the energy
* ``optimize``             optking optimisation; final coordinates (Bohr) and energy
* ``hessian``              psi4.hessian(dertype=1): finite differences of analytic gradients
* ``polarizability``       static alpha (Bohr^3), see below
* ``field_polarizability`` alpha at each uniform field in ``fields`` (for finite-field beta)

Alpha: closed-shell (RHF/RKS) references use psi4's CPSCF solver, the one behind
``properties(..., properties=['DIPOLE_POLARIZABILITIES'])``; psi4 1.3.2 has no open-shell
CPSCF, so UHF/UKS fall back to central differences of the dipole under a uniform field
(``alpha_method`` in the output says which).

Field convention: a uniform electric field F adds +F.r to the electronic Hamiltonian (so the
dipole changes by +alpha.F). psi4's ``perturb_dipole`` adds lambda.mu_el = -lambda.r instead,
so a field F is applied as ``perturb_dipole = -F``; the dipole integrals are taken at the
origin of the input frame (no_com/no_reorient keep that frame).

The output (JSON) always has ``ok``; on failure ``error`` (one line), ``error_type`` and
``kind`` ("scf", "opt" or "engine") instead of results, plus ``last_coords_bohr`` (the last
geometry with a gradient) when an optimisation did not converge.
"""

import json
import os
import sys
import time
import traceback


def _one_line(ex):
    """psi4's message without the C++ call stack, on one line."""
    msg = getattr(ex, "message", None) or str(ex) or type(ex).__name__
    lines = [ln.strip() for ln in str(msg).splitlines() if ln.strip()]
    keep = []
    for ln in lines:
        if ln.startswith("Error occurred in file") or ln.startswith("The most recent"):
            break
        keep.append(ln)
    text = " ".join(keep or lines[:1])
    if text.startswith("Fatal Error:"):
        text = text[len("Fatal Error:"):].strip()
    return " ".join(text.split())[:500]


def _kind(psi4, ex):
    exc = getattr(psi4, "driver", None)
    exc = getattr(getattr(exc, "p4util", None), "exceptions", None)
    if exc is not None:
        if isinstance(ex, exc.OptimizationConvergenceError):
            return "opt"
        if isinstance(ex, exc.SCFConvergenceError):
            return "scf"
    msg = str(ex).lower()
    if "scf" in msg and ("converge" in msg or "iterations" in msg):
        return "scf"
    return "engine"


def _import_psi4():
    try:
        import psi4  # noqa: F401
    except ImportError:
        libdir = os.environ.get("HESSFLOW_PSI4_LIBDIR", "")
        if not libdir:
            raise
        sys.path.insert(1, libdir)
        import psi4  # noqa: F811
    return psi4


class Runner:
    def __init__(self, psi4, job):
        import numpy as np

        self.np = np
        self.psi4 = psi4
        self.job = job
        psi4.set_output_file(job.get("output_file", "psi4.out"), False)
        psi4.set_num_threads(int(job["threads"]))
        psi4.set_memory(int(job["memory_mb"]) * 1000 * 1000)
        lines = ["units bohr", "symmetry c1", "no_reorient", "no_com",
                 "%d %d" % (job["charge"], job["multiplicity"])]
        for sym, (x, y, z) in zip(job["symbols"], job["coords_bohr"]):
            lines.append("%s %.12f %.12f %.12f" % (sym, x, y, z))
        self.mol = psi4.geometry("\n".join(lines), name=str(job.get("name") or "mol")[:60] or "mol")
        self.mol.update_geometry()
        self.method = job["method"]

    # ---- settings
    def options(self, field=None, extra=None):
        psi4, job = self.psi4, self.job
        psi4.core.clean()
        psi4.core.clean_options()
        psi4.core.clean_variables()
        opts = {
            "basis": job["basis"],
            "puream": bool(job["puream"]),
            "reference": job["reference"],
            "scf_type": "pk",
            "e_convergence": job["e_convergence"],
            "d_convergence": job["d_convergence"],
            "maxiter": int(job["maxiter"]),
            "fail_on_maxiter": True,
            "solver_convergence": job["solver_convergence"],
            "solver_maxiter": 100,
        }
        if job.get("grid"):
            opts["dft_radial_points"] = int(job["grid"][0])
            opts["dft_spherical_points"] = int(job["grid"][1])
            opts["dft_pruning_scheme"] = "flat"  # = no pruning in psi4 1.3
        if job.get("damping"):
            opts["damping_percentage"] = 100.0 * float(job["damping"])
        if job.get("level_shift"):
            opts["level_shift"] = float(job["level_shift"])
        if job.get("soscf"):
            opts["soscf"] = True
        if field is not None and any(abs(f) > 0 for f in field):
            # psi4 adds perturb_dipole . mu_el(= -r): a field F is perturb_dipole = -F
            opts["perturb_h"] = True
            opts["perturb_with"] = "dipole"
            opts["perturb_dipole"] = [-float(f) for f in field]
        opts.update(extra or {})
        psi4.set_options(opts)

    # ---- helpers
    def dipole(self, wfn):
        np = self.np
        mints = self.psi4.core.MintsHelper(wfn.basisset())
        dens = np.asarray(wfn.Da().to_array()) + np.asarray(wfn.Db().to_array())
        nuc = wfn.molecule().nuclear_dipole()
        # psi4's ao_dipole integrals carry the electron charge: -<mu|r|nu>
        return [float(np.vdot(dens, np.asarray(m.to_array()))) + float(nuc[i])
                for i, m in enumerate(mints.ao_dipole())]

    def frontier(self, wfn):
        np = self.np
        ea = np.asarray(wfn.epsilon_a().to_array()).ravel()
        eb = np.asarray(wfn.epsilon_b().to_array()).ravel()
        na, nb = wfn.nalpha(), wfn.nbeta()
        occ = [e[n - 1] for e, n in ((ea, na), (eb, nb)) if n > 0]
        vir = [e[n] for e, n in ((ea, na), (eb, nb)) if n < e.size]
        return (float(max(occ)) if occ else float("nan"), float(min(vir)) if vir else float("nan"))

    def energy_wfn(self, field=None):
        self.options(field)
        e, wfn = self.psi4.energy(self.method, molecule=self.mol, return_wfn=True)
        return float(e), wfn

    # ---- tasks
    def task_energy(self):
        e, wfn = self.energy_wfn()
        homo, lumo = self.frontier(wfn)
        return {"energy": e, "dipole": self.dipole(wfn), "homo": homo, "lumo": lumo}

    def task_gradient(self):
        self.options()
        g, wfn = self.psi4.gradient(self.method, molecule=self.mol, return_wfn=True)
        g = self.np.asarray(g.to_array()).reshape(-1, 3)
        return {"gradient": g.tolist(), "energy": float(wfn.energy())}

    def task_optimize(self):
        job = self.job
        self.options(extra={
            "g_convergence": job["opt"]["g_convergence"],
            "geom_maxiter": int(job["opt"]["max_steps"]),
            "intrafrag_step_limit": float(job["opt"]["step_limit_bohr"]),
            "intrafrag_step_limit_max": max(1.0, float(job["opt"]["step_limit_bohr"])),
        })
        e, hist = self.psi4.optimize(self.method, molecule=self.mol, return_history=True)
        # the last gradient point is the converged one; energy and geometry belong together
        coords = self.np.asarray(hist["coordinates"][-1].to_array()).reshape(-1, 3)
        return {"energy": float(hist["energy"][-1]), "coords_bohr": coords.tolist(),
                "n_steps": len(hist["energy"])}

    def task_hessian(self):
        # fd_project false: keep the full Cartesian Hessian (psi4 would otherwise project out
        # rotations whenever the gradient rms is below 1e-2, which is not a Hessian at this
        # geometry); translations are still projected out, exactly as the energy is invariant.
        self.options(extra={"fd_project": False, "points": 3})
        H = self.psi4.hessian(self.method, molecule=self.mol, dertype=1)
        H = self.np.asarray(H.to_array())
        return {"hessian": H.tolist()}

    def _closed_shell(self):
        return self.job["reference"] in ("rhf", "rks")

    def alpha_at(self, field):
        """(alpha at the field, how it was computed)."""
        np = self.np
        if self._closed_shell():
            self.options(field)
            self.psi4.properties(self.method, molecule=self.mol,
                                 properties=["DIPOLE_POLARIZABILITIES"])
            a = np.empty((3, 3))
            for i, x in enumerate("XYZ"):
                for j, y in enumerate("XYZ"):
                    a[i, j] = self.psi4.core.variable("DIPOLE POLARIZABILITY " + x + y)
            return a, "analytic (psi4 CPSCF, properties DIPOLE_POLARIZABILITIES)"
        h = float(self.job["alpha_field_step"])
        a = np.empty((3, 3))
        for j in range(3):
            mus = []
            for s in (1.0, -1.0):
                f = list(field)
                f[j] += s * h
                mus.append(self.dipole(self.energy_wfn(f)[1]))
            a[:, j] = (np.array(mus[0]) - np.array(mus[1])) / (2.0 * h)
        return a, "finite-field dipole (central differences, step %g au)" % h

    def task_polarizability(self):
        a, how = self.alpha_at([0.0, 0.0, 0.0])
        return {"alpha": a.tolist(), "alpha_method": how}

    def task_field_polarizability(self):
        fields = self.job.get("fields") or [self.job["field"]]
        out, how = [], ""
        for f in fields:
            a, how = self.alpha_at([float(x) for x in f])
            out.append(a.tolist())
        return {"alphas": out, "alpha_method": how}


def main(argv):
    job_path, out_path = argv[1], argv[2]
    t0 = time.time()
    out = {"ok": False}
    psi4 = None
    try:
        with open(job_path) as fh:
            job = json.load(fh)
        os.chdir(os.path.dirname(os.path.abspath(job_path)))
        psi4 = _import_psi4()
        out["psi4_version"] = psi4.__version__
        runner = Runner(psi4, job)
        task = job["task"]
        fn = getattr(runner, "task_" + task, None)
        if fn is None:
            raise ValueError("unknown task %r" % task)
        out.update(fn())
        out["ok"] = True
    except BaseException as ex:  # noqa: BLE001 - report everything to the parent
        out["error"] = _one_line(ex)
        out["error_type"] = type(ex).__name__
        out["kind"] = _kind(psi4, ex) if psi4 is not None else "engine"
        wfn = getattr(ex, "wfn", None)   # OptimizationConvergenceError: the last computed point
        if out["kind"] == "opt" and wfn is not None:
            try:
                out["last_coords_bohr"] = wfn.molecule().geometry().to_array().tolist()
            except Exception:  # noqa: BLE001 - best effort only
                pass
        out["traceback"] = traceback.format_exc()[-4000:]
    out["wall_s"] = time.time() - t0
    tmp = out_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(out, fh)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
