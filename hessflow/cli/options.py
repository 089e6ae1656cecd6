"""The vocabulary every ``hessflow`` command shares: the help formatter, the exit codes, the
deprecated spellings, the training options, ``--json`` printing.

- ``-o/--output FILE`` is always a file, ``--out-dir DIR`` always a run directory;
- ``--json`` prints one JSON object on stdout (schemas in :mod:`.schemas`, docs/cli.md);
- exit codes: :data:`EXIT_OK` 0, :data:`EXIT_FAILED` 1 (some molecules failed), :data:`EXIT_USAGE`
  2 (a bad option, argument or input file), :data:`EXIT_RUNTIME` 3 (store, engine, I/O).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

from ..errors import HessflowError

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_RUNTIME", "EXIT_CODES", "UsageError",
           "HelpFormatter", "Deprecated", "add_parser", "add_out_dir", "add_json",
           "add_no_progress", "add_training_options", "add_group", "print_json", "existing_store",
           "progress_wanted"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3
#: exit status -> meaning, as documented in ``hessflow --help`` and docs/cli.md
EXIT_CODES = {EXIT_OK: "success",
              EXIT_FAILED: "the command ran, but some molecules failed (see their reasons)",
              EXIT_USAGE: "usage error: a bad option, argument or input file (nothing computed)",
              EXIT_RUNTIME: "runtime error: the store, an engine, the ranks or the file system",
              130: "interrupted (Ctrl-C); what was reported as stored is in the store"}


class UsageError(HessflowError):
    """A command-line argument that cannot be used (exit status 2)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help with each option's default appended (``(default: X)``) unless its help already says
    it, or there is none worth saying (``None``, ``False``); description and epilog kept as
    written (plain text with examples)."""

    def _get_help_string(self, action):
        return help_with_default(action)


def help_with_default(action) -> str:
    """``action``'s help with ``(default: X)`` appended where it is worth saying."""
    text = action.help or ""
    d = action.default
    if (action.option_strings and d is not None and d is not False and d != argparse.SUPPRESS
            and "default" not in text
            and not isinstance(action, (argparse._VersionAction, argparse._CountAction))):
        text += f" (default: {d})"
    return text


class Deprecated(argparse.Action):
    """An option spelling kept for a while: stores into the new option's ``dest`` like it and
    prints one line ``hessflow: warning: OLD is deprecated; use NEW`` on stderr."""

    def __init__(self, option_strings, dest, new: str, store=None, **kw):
        self.new, self.store = new, store
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"hessflow: warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values if self.store is None else self.store(values))


def add_parser(func, sub, name: str, help: str, example: str, description: str | None = None):
    """A sub-command's parser, running ``func(args)``: one-line ``help`` (in ``hessflow
    --help``), ``description`` (default: the help) and one ``example`` command line that ends its
    ``--help``."""
    text = textwrap.fill(description or help[:1].upper() + help[1:], 79)
    p = sub.add_parser(name, help=help, description=text, epilog=f"example:\n  {example}",
                       formatter_class=HelpFormatter)
    p.set_defaults(func=func)
    return p


def add_out_dir(p, default_text: str, required: bool = False) -> None:
    """``--out-dir DIR`` (run directory) and its deprecated spelling ``--out``. ``required`` is
    checked by the command (an alias cannot satisfy argparse's own check)."""
    p.add_argument("--out-dir", dest="out_dir", metavar="DIR",
                   help=f"run directory ({'required' if required else default_text}; "
                        f"--out is a deprecated spelling)")
    p.add_argument("--out", dest="out_dir", action=Deprecated, new="--out-dir",
                   help=argparse.SUPPRESS)


def add_json(p, what: str) -> None:
    """``--json``: print ``what`` as one JSON object on stdout instead of text."""
    p.add_argument("--json", action="store_true",
                   help=f"print {what} as one JSON object on stdout (schema: docs/cli.md)")


def add_no_progress(p, what: str = "the progress bar") -> None:
    """``--no-progress``: silence ``what`` (stderr); ``hessflow -q`` does too."""
    p.add_argument("--no-progress", action="store_true",
                   help=f"do not show {what} on stderr (also: hessflow -q)")


def progress_wanted(a) -> bool:
    """Whether a command shows progress: not ``--no-progress`` (when it has one), not ``-q``."""
    return not (getattr(a, "no_progress", False) or getattr(a, "quiet", False)
                or getattr(a, "global_no_progress", False))


def add_training_options(p, *, epochs: int, batch_size: int, patience: int, lr: float = 1e-3,
                         limit_help: str = "only the first N molecules") -> None:
    """Add the options every training command takes, with that command's defaults."""
    p.add_argument("--epochs", type=int, default=epochs,
                   help="training epochs at most (early stopping may end sooner)")
    p.add_argument("--batch-size", type=int, default=batch_size,
                   help="global batch in molecules, split over the ranks")
    p.add_argument("--lr", type=float, default=lr, help="Adam learning rate")
    p.add_argument("--patience", type=int, default=patience,
                   help="epochs without a better validation loss before stopping")
    p.add_argument("--seed", type=int, default=0, help="split and initialisation seed")
    p.add_argument("--limit", type=int, metavar="N", help=limit_help + " (default: all)")
    p.add_argument("--ranks", type=int, default=1,
                   help="data-parallel ranks (mpiexec, or srun in Slurm)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda")


def add_group(sub, name: str, help: str):
    """A command with sub-commands of its own (``hessflow NAME train | ...``): their parsers."""
    return sub.add_parser(name, help=help, description=help[:1].upper() + help[1:],
                          formatter_class=HelpFormatter).add_subparsers(
        dest=f"{name}_command", required=True, metavar="COMMAND")


def print_json(obj) -> None:
    """``obj`` as indented JSON on stdout (NaN written as null)."""
    print(json.dumps(_finite(obj), indent=1, sort_keys=False))


def _finite(v):
    """``v`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(v, float):
        return v if v == v and abs(v) != float("inf") else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def existing_store(path) -> str:
    """``path`` if a file is there; else a usage error ``PATH: no such store`` (exit status 2:
    the argument is wrong, nothing failed)."""
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such store")
    return str(path)
