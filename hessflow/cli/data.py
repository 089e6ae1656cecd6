"""``hessflow compute | info | export``: fill a store from molecule files, count it, export it."""

from __future__ import annotations

import json
import sys


def _grid(text: str):
    """``--grid``: a PySCF grid level (an integer 0-9) or ``R,S`` radial,angular points."""
    return int(text) if "," not in text else text


def _cmd_compute(a):
    from .. import api
    summary = api.compute(a.input, a.store, engine=a.engine, method=a.method, basis=a.basis,
                          tasks=a.tasks, progress=not a.no_progress, limit=a.limit,
                          level=api.make_level(a.engine, a.method, a.basis, grid=a.grid,
                                               cartesian=a.cartesian or None, threads=a.threads))
    print(api.summary_table(summary))
    return 1 if summary.failed else 0


def _cmd_info(a):
    from .. import api
    d = api.info(a.store)
    print(json.dumps(d, indent=2) if a.json else api.dumps_info(d))
    return 0


def _cmd_export(a):
    from .. import api
    text = api.export(a.store, a.format, a.output)
    if a.output is None:
        sys.stdout.write(text)
    return 0


def register(sub):
    c = sub.add_parser("compute", help="compute what is missing for every molecule of INPUT")
    c.add_argument("input", help="SMILES (.smi/.csv), XYZ/QM9 (.xyz), SDF file or a directory")
    c.add_argument("--store", required=True, help="HDF5 store (created if missing)")
    c.add_argument("--engine", default="pyscf", choices=["pyscf", "psi4", "xtb"])
    c.add_argument("--method", help="default b3lyp (xtb: gfn2-xtb)")
    c.add_argument("--basis", help="default 6-31g(2df,p)")
    c.add_argument("--tasks", default="opt,freq,polar,hyperpolar",
                   help="comma-separated among opt,freq,polar,hyperpolar")
    c.add_argument("--grid", type=_grid,
                   help="DFT grid: PySCF level 0-9 or 'R,S' radial,angular points")
    c.add_argument("--cartesian", action="store_true", help="Cartesian d/f shells (default pure)")
    c.add_argument("--threads", type=int, help="threads per QM calculation (default: all)")
    c.add_argument("--limit", type=int, help="only the first N molecules")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=_cmd_compute)

    i = sub.add_parser("info", help="counts by status, engines and methods")
    i.add_argument("store")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_cmd_info)

    e = sub.add_parser("export", help="export the store as CSV or extended XYZ")
    e.add_argument("store")
    e.add_argument("--format", default="csv", choices=["csv", "extxyz"])
    e.add_argument("-o", "--output")
    e.set_defaults(func=_cmd_export)
