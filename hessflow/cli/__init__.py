"""``hessflow`` command line. Every command mirrors a function of :mod:`hessflow.api` or of the
stage it runs; this package only parses options and prints results (nothing imports it).

One module per group of commands, each with a ``register(subparsers)``:
:mod:`.data` (compute, info, export), :mod:`.workflow` (run, submit, status), :mod:`.train`,
:mod:`.analysis` (explain, report), :mod:`.vae`, :mod:`.bp`; :mod:`.options` holds the options
the training commands share.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import HessflowError
from . import analysis, bp, data, train, vae, workflow

__all__ = ["build_parser", "main"]

DESCRIPTION = "``hessflow`` command line. Every command mirrors a function of :mod:`hessflow.api`."
# the command groups, in the order of ``hessflow --help``
GROUPS = (data, train, workflow, analysis, vae, bp)


def build_parser() -> argparse.ArgumentParser:
    """The ``hessflow`` parser with every sub-command."""
    p = argparse.ArgumentParser(prog="hessflow", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"hessflow {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv=None) -> int:
    """Run one command; exit status 0 (ok), 1 (some molecules failed), 2 (a one-line error)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HessflowError as exc:
        print(f"hessflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hessflow: interrupted; everything reported as stored is in the store",
              file=sys.stderr)
        return 130
