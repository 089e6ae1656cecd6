"""``hessflow compute | info | export``: fill a store from molecule files, count it, export it."""

from __future__ import annotations

import sys

from ..qm.level import SHELLS
from .options import (add_json, add_no_progress, add_parser, existing_store, print_json,
                      progress_wanted)

#: the record fields of one molecule in ``compute --json`` / ``run --json`` (units in the names)
MOLECULE_FIELDS = ("key", "energy_hartree", "zpve_hartree", "alpha_iso_bohr3", "beta_par_au",
                   "gap_hartree", "n_imag", "wall_time_s")


def _grid(text: str):
    """``--grid``: a PySCF grid level (an integer 0-9) or ``R,S`` radial,angular points."""
    return int(text) if "," not in text else text


def _plain(v):
    """A numpy scalar as a Python number (JSON), strings and None unchanged."""
    return v.item() if hasattr(v, "item") else v


def summary_json(summary, command: str, store: str) -> dict:
    """A :class:`hessflow.progress.Summary` as the ``compute``/``run`` JSON object
    (see :data:`hessflow.cli.schemas.SCHEMAS`)."""
    mols = []
    for name, status, rec in summary.rows:
        row = {"name": str(name), "status": status, "reason": None,
               **dict.fromkeys(MOLECULE_FIELDS)}
        if isinstance(rec, dict):
            row["reason"] = rec.get("reason") or None
            if status != "failed":
                row.update({f: _plain(rec.get(f)) for f in MOLECULE_FIELDS})
            else:
                row["key"] = rec.get("key")
        else:
            row["reason"] = str(rec)
        mols.append(row)
    return {"schema": f"hessflow.{command}/1", "store": str(store), "done": summary.done,
            "skipped": summary.skipped, "failed": summary.failed, "molecules": mols}


def _cmd_compute(a):
    from .. import api
    summary = api.compute(a.input, a.store, engine=a.engine, method=a.method, basis=a.basis,
                          tasks=a.tasks, progress=progress_wanted(a), limit=a.limit,
                          device=a.device,
                          level=api.make_level(a.engine, a.method, a.basis, grid=a.grid,
                                               shells=a.shells, cartesian=a.cartesian or None,
                                               threads=a.threads))
    if a.json:
        print_json(summary_json(summary, "compute", a.store))
    else:
        print(api.summary_table(summary))
    return 1 if summary.failed else 0


def _cmd_info(a):
    from .. import api
    d = api.info(existing_store(a.store))
    if a.json:
        print_json({"schema": "hessflow.info/1", "store": str(a.store), **d})
    else:
        print(api.dumps_info(d))
    return 0


def _cmd_verify(a):
    from ..store import verify
    report = verify(existing_store(a.store))
    if a.json:
        print_json({"schema": "hessflow.verify/1", "store": str(a.store), "ok": report.ok,
                    "problems": [str(p) for p in report.problems], "notes": list(report.notes),
                    "damaged_records": report.damaged_records})
    else:
        print(report)
    return 0 if report.ok else 1


def _cmd_export(a):
    from .. import api
    text = api.export(existing_store(a.store), a.format, a.output,
                      thermo={"temperature_k": a.temperature, "pressure_pa": a.pressure},
                      atom_energies=not a.no_atom_energies)
    if a.output is None:
        sys.stdout.write(text)
    return 0


def register(sub):
    from ..qm.engines import ENGINE_NAMES
    c = add_parser(_cmd_compute, sub, "compute",
                   "compute what is missing for every molecule of INPUT",
                   "hessflow compute molecules.smi --store data.h5 --engine xtb",
                   "Compute what is missing (optimisation, Hessian and frequencies, polarizability "
                   "alpha, hyperpolarizability beta) for every molecule of INPUT into an HDF5 "
                   "store. Finished molecules are skipped; failed ones are retried. Exit status 1 "
                   "when some molecules failed (their reasons are in the store and on stderr).")
    c.add_argument("input", help="SMILES (.smi/.csv), XYZ/QM9 (.xyz), SDF file, a directory, or "
                                 "any file ase.io reads (.extxyz, .traj, .pdb, .db, ...), "
                                 "QCSchema .json")
    c.add_argument("--store", required=True, metavar="FILE.h5",
                   help="HDF5 store (created if missing)")
    c.add_argument("--engine", default="pyscf", choices=list(ENGINE_NAMES),
                   help="QM program: pyscf (DFT), psi4 (DFT, out of process), xtb (GFN2-xTB), "
                        "gpu4pyscf (DFT on a GPU: the [gpu] extra)")
    c.add_argument("--device", default="cpu", choices=["cpu", "auto", "cuda"],
                   help="where pyscf's DFT runs: cpu, cuda (GPU4PySCF, the [gpu] extra) or auto "
                        "(the GPU when usable, else the CPU with a note)")
    c.add_argument("--method", help="method (default: b3lyp; xtb: gfn2-xtb)")
    c.add_argument("--basis", help="basis set (default: 6-31g(2df,p); xtb: none)")
    c.add_argument("--tasks", default="opt,freq,polar,hyperpolar",
                   help="comma-separated among opt,freq,polar,hyperpolar")
    c.add_argument("--grid", type=_grid,
                   help="DFT grid: PySCF level 0-9 or 'R,S' radial,angular points "
                        "(default: the engine's)")
    c.add_argument("--shells", choices=SHELLS,
                   help="d/f shells in Gaussian's words: 6d7f (Cartesian d, pure f: Gaussian's "
                        "6-31G convention, QM9's; the default), 5d7f (pure), 6d10f (Cartesian)")
    c.add_argument("--cartesian", action="store_true",
                   help="deprecated: --shells 6d10f")
    c.add_argument("--threads", type=int, help="threads per QM calculation (default: all cores)")
    c.add_argument("--limit", type=int, metavar="N", help="only the first N molecules "
                                                          "(default: all)")
    add_no_progress(c, "the progress bar (molecules done/failed)")
    add_json(c, "the summary (one entry per molecule)")

    i = add_parser(_cmd_info, sub, "info", "counts by status, engines and methods",
                   "hessflow info data.h5 --json")
    i.add_argument("store", help="HDF5 store (FILE.h5)")
    add_json(i, "the counts")

    v = add_parser(_cmd_verify, sub, "verify",
                   "check every record of a store against its checksums (exit 1 on damage)",
                   "hessflow verify data.h5",
                   "Read every value of every record and check it against its checksum, the "
                   "ragged index, the write-ahead log's frames and identity and the journal; one "
                   "line per problem, naming the damaged records. Needs no write access. Exit "
                   "status 1 when anything is damaged.")
    v.add_argument("store", help="HDF5 store (FILE.h5)")
    add_json(v, "the problems and notes")

    from ..formats.export import FORMATS
    e = add_parser(_cmd_export, sub, "export",
                   "export the store: CSV, extended XYZ (ASE), ASE db, QCSchema, "
                                  "QM9's own layout",
                   "hessflow export data.h5 --format extxyz -o data.extxyz")
    e.add_argument("store", help="HDF5 store (FILE.h5)")
    e.add_argument("--format", default="csv", choices=["csv", *FORMATS],
                   help="csv (one row per record, units in the column names), extxyz (energy "
                        "eV, forces eV/Angstrom, labels; ase.io reads it), asedb (-o FILE.db), "
                        "qcschema (JSON Lines of AtomicResult), qm9 (-o DIR of dsgdb9nsd_*.xyz), "
                        "qm9-csv")
    e.add_argument("-o", "--output", metavar="FILE",
                   help="output file (qm9: a folder; default: stdout)")
    e.add_argument("--temperature", type=float, default=298.15, metavar="K",
                   help="temperature of the csv's thermochemistry columns (U, H, G, S, Cv; "
                        "QM9's formats: 298.15 only)")
    e.add_argument("--pressure", type=float, default=101325.0, metavar="PA",
                   help="pressure of the csv's thermochemistry columns, Pa (QM9's formats: "
                        "101325 only)")
    e.add_argument("--no-atom-energies", action="store_true",
                   help="leave the atomization energies (csv, qm9-csv) empty instead of "
                        "computing the free atoms at each record's level (once; kept in "
                        "FILE.h5.free_atoms.json)")
