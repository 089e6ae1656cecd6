"""docs/cli.md, written from the parser itself so that it cannot drift::

    python -m hessflow.cli.docs > docs/cli.md

(``tests/cli/test_cli_contract.py`` checks that the committed file equals this output.)
"""

from __future__ import annotations

import argparse

from .options import EXIT_CODES, help_with_default
from .schemas import SCHEMAS, render

__all__ = ["cli_markdown", "commands"]

HEAD = """# The `hessflow` command line

This file is generated from the parser: `python -m hessflow.cli.docs > docs/cli.md` (a test
checks that it is current). `hessflow --help` and `hessflow COMMAND --help` show the same text.

## Conventions

- `-o/--output FILE` is always a file; `--out-dir DIR` is always a run directory. Old spellings
  keep working for a while and print one `hessflow: warning: ... is deprecated` line on stderr:
  `--out` (now `--out-dir` for `train`, `vae train`, `bp train`; `-o/--output` for
  `vae sample`/`vae interpolate`), `--output N` of `explain`/`report` (now `--target-index N`).
- Results go to stdout; progress, warnings and errors to stderr. An error is one line,
  `hessflow: error: ...`.
- Global flags come before the command: `hessflow -q COMMAND ...` (no progress, no engine
  output), `hessflow -v COMMAND ...` (the engines' logs and warnings: geomeTRIC, PySCF,
  basis-set-exchange, Parsl; `-vv` debug), `hessflow --no-progress COMMAND ...`.
- Training commands print one line per epoch on stderr (rank 0 only):
  `train epoch  3/50  loss=0.2311  val MAE=4.127 Bohr^3  1.92 s/epoch  ETA 1m30s`.
- Units: atomic units inside; printed numbers name their unit (`Bohr^3`, `Hartree`, `eV`,
  `kcal/mol`, `cm^-1`, `Debye`, `s`).
"""

JSON_INTRO = """## JSON output (`--json`)

With `--json` a command prints one JSON object on stdout and nothing else there (NaN is written as
`null`). Shapes below: `key: type`, `?` marks a key that may be absent, `a|b` either type,
`(any key)` an object of such values. Numbers are in the unit their key names (`_hartree`,
`_bohr3`, `_au`, `_s`, `_unix`: seconds since 1970) or in the object's `unit`. Every object
carries `"schema": "hessflow.COMMAND/1"`; the number changes only when a key changes meaning or
goes away.
"""


def commands(parser: argparse.ArgumentParser, prefix: str = "hessflow"):
    """``(name, parser)`` of every command that runs something, depth first in help order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}"
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield from commands(sub, full)
                else:
                    yield full, sub


def _flag(action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    takes = action.nargs != 0
    meta = action.metavar or (("{" + ",".join(map(str, action.choices)) + "}")
                              if action.choices else action.dest.upper())
    return ", ".join(f"`{o} {meta}`" if takes else f"`{o}`" for o in action.option_strings)


def _options(parser) -> list[str]:
    rows = ["| option | meaning |", "|---|---|"]
    for a in parser._actions:
        if a.help == argparse.SUPPRESS or isinstance(a, (argparse._HelpAction,
                                                         argparse._SubParsersAction)):
            continue
        text = help_with_default(a).replace("|", "\\|")
        rows.append(f"| {_flag(a)} | {text} |")
    return rows


def cli_markdown() -> str:
    """The text of docs/cli.md."""
    from . import DESCRIPTION, EXAMPLES, build_parser
    p = build_parser()
    out = [HEAD, "## `hessflow`", "", " ".join(DESCRIPTION.split()), "", *_options(p), "",
           "The five most common commands:", "", "```"]
    for what, cmd in EXAMPLES:
        out += [f"# {what}", cmd]
    out += ["```", "", "## Exit status", "", "| status | meaning |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in EXIT_CODES.items()]
    out += ["", "## Commands", ""]
    for name, sub in commands(p):
        epilog = (sub.epilog or "").replace("example:", "").strip()
        out += [f"### `{name}`", "", " ".join((sub.description or "").split()), "",
                *_options(sub), "", "Example:", "", "```", epilog, "```", ""]
    out += [JSON_INTRO]
    for name, shape in SCHEMAS.items():
        out += [f"### `hessflow {name} --json`", "", "```", render(shape), "```", ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(cli_markdown(), end="")
