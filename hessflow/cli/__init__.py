"""``hessflow`` command line. Every command mirrors a function of :mod:`hessflow.api` or of the
stage it runs; this package only parses options and prints results (nothing imports it).

One module per group of commands, each with a ``register(subparsers)``:
:mod:`.data` (compute, info, export), :mod:`.workflow` (run, submit, status), :mod:`.train`,
:mod:`.analysis` (explain, report), :mod:`.vae`, :mod:`.bp`; :mod:`.options` holds the shared
vocabulary (help formatter, exit codes, deprecated spellings, training options), :mod:`.schemas`
the shapes of ``--json`` output, :mod:`.engine_logs` what engines may print, :mod:`.docs` writes
docs/cli.md from the parser.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from .. import __version__
from ..errors import EngineError, EngineNotFound, HessflowError, StoreError
from . import analysis, bp, data, train, vae, workflow
from .engine_logs import engine_logs
from .options import EXIT_CODES, EXIT_RUNTIME, EXIT_USAGE, HelpFormatter

__all__ = ["build_parser", "main", "exit_status", "DESCRIPTION", "EPILOG"]

DESCRIPTION = textwrap.fill("hessflow: molecules -> DFT/xTB Hessians, frequencies, ZPVE, "
                            "polarizability alpha, "
               "hyperpolarizability beta -> one HDF5 store -> property models, VAE, "
               "Behler-Parrinello networks, relevance, HTML reports.")
#: the five most common commands, shown at the end of ``hessflow --help``
EXAMPLES = (
    ("compute labels for a SMILES file into a store (GFN2-xTB; default PySCF B3LYP)",
     "hessflow compute molecules.smi --store data.h5 --engine xtb"),
    ("what is in the store, as counts (or --json)", "hessflow info data.h5"),
    ("a whole workflow: QM, then training stages (resumes where it stopped)",
     "hessflow run workflow.yaml"),
    ("train a model of alpha (Bohr^3) on the store", "hessflow train data.h5 --target alpha "
                                                     "--out-dir runs/alpha"),
    ("an HTML page of the store (or of a training run directory)",
     "hessflow report data.h5 -o data.html"),
)
EPILOG = ("examples:\n" + "\n".join(f"  {cmd}\n      {what}" for what, cmd in EXAMPLES)
          + "\n\nexit status:\n" + "\n".join(f"  {k:<4d}{v}" for k, v in EXIT_CODES.items())
          + "\n\n'hessflow COMMAND --help' shows a command's options; docs/cli.md has them all.")
# the command groups, in the order of ``hessflow --help``
GROUPS = (data, train, workflow, analysis, vae, bp)
# errors of the machinery (exit status 3); every other HessflowError is about what was asked (2)
RUNTIME_ERRORS = (StoreError, EngineError, EngineNotFound, OSError)


def build_parser() -> argparse.ArgumentParser:
    """The ``hessflow`` parser with every sub-command."""
    p = argparse.ArgumentParser(prog="hessflow", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"hessflow {__version__}",
                   help="print the version and exit")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars or per-epoch lines, no engine output (errors and "
                        "results only)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="show the engines' logs and warnings (geomeTRIC, PySCF, basis-set-"
                        "exchange, Parsl) on stderr; -vv: debug")
    p.add_argument("--no-progress", dest="global_no_progress", action="store_true",
                   help="no progress output from any command (as each command's --no-progress)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return p


def exit_status(exc: BaseException) -> int:
    """The exit status of an error: 3 for the store, an engine or the file system, else 2."""
    return EXIT_RUNTIME if isinstance(exc, RUNTIME_ERRORS) else EXIT_USAGE


def main(argv=None) -> int:
    """Run one command; exit status 0 (ok), 1 (some molecules failed), 2 (usage error),
    3 (runtime error), each error as one line on stderr."""
    argv = sys.argv[1:] if argv is None else [str(x) for x in argv]
    args = build_parser().parse_args(argv)
    args.command_line = argv  # for the run's provenance (command.json)
    try:
        with engine_logs(args.verbose, args.quiet):
            return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`hessflow info S.h5 | head -1`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
        return 0
    except HessflowError as exc:
        _error(exc)
        return exit_status(exc)
    except OSError as exc:
        _error(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print("hessflow: interrupted; everything reported as stored is in the store",
              file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - never a traceback for a user, unless asked
        if os.environ.get("HESSFLOW_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        _error(f"unexpected {type(exc).__name__}: {first} (HESSFLOW_DEBUG=1 shows the traceback)")
        return EXIT_RUNTIME


def _error(message) -> None:
    """``hessflow: error: MESSAGE`` on a line of its own (after a progress bar's line)."""
    sys.stdout.flush()
    print(f"\nhessflow: error: {message}" if _bar_open() else f"hessflow: error: {message}",
          file=sys.stderr)


def _bar_open() -> bool:
    """Whether a tqdm bar may still hold the terminal's line (stderr is a terminal)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
