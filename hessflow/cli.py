"""``hessflow`` command line. Every command mirrors a function of :mod:`hessflow.api`."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .errors import HessflowError


def _cmd_compute(a):
    from . import api
    summary = api.compute(a.input, a.store, engine=a.engine, method=a.method, basis=a.basis,
                          tasks=a.tasks, progress=not a.no_progress, limit=a.limit,
                          level=api.make_level(a.engine, a.method, a.basis, grid=a.grid,
                                               cartesian=a.cartesian or None, threads=a.threads))
    print(api.summary_table(summary))
    return 1 if summary.failed else 0


def _cmd_info(a):
    from . import api
    d = api.info(a.store)
    print(json.dumps(d, indent=2) if a.json else api.dumps_info(d))
    return 0


def _cmd_export(a):
    from . import api
    text = api.export(a.store, a.format, a.output)
    if a.output is None:
        sys.stdout.write(text)
    return 0


# modules with a ``register(subparsers)`` adding their sub-commands
PLUGINS = (
    "hessflow.workflows.cli",  # run / submit / status / train
    "hessflow.analysis.cli",   # explain / report
    "hessflow.ml.vae_cli",     # vae train | sample | interpolate
    "hessflow.ml.bp_cli",      # bp train | evaluate (element-coupled Behler-Parrinello)
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hessflow", description=__doc__)
    p.add_argument("--version", action="version", version=f"hessflow {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compute", help="compute what is missing for every molecule of INPUT")
    c.add_argument("input", help="SMILES (.smi/.csv), XYZ/QM9 (.xyz), SDF file or a directory")
    c.add_argument("--store", required=True, help="HDF5 store (created if missing)")
    c.add_argument("--engine", default="pyscf", choices=["pyscf", "psi4", "xtb"])
    c.add_argument("--method", help="default b3lyp (xtb: gfn2-xtb)")
    c.add_argument("--basis", help="default 6-31g(2df,p)")
    c.add_argument("--tasks", default="opt,freq,polar,hyperpolar",
                   help="comma-separated among opt,freq,polar,hyperpolar")
    c.add_argument("--grid", help="DFT grid: PySCF level 0-9 or 'R,S' radial,angular points")
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

    import importlib
    import importlib.util
    for name in PLUGINS:  # each stage's own sub-commands, in its own module
        if importlib.util.find_spec(name):
            importlib.import_module(name).register(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "grid", None) and isinstance(args.grid, str) and "," not in args.grid:
        args.grid = int(args.grid)
    try:
        return int(args.func(args) or 0)
    except HessflowError as exc:
        print(f"hessflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hessflow: interrupted; everything reported as stored is in the store",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
