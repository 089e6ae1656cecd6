"""What an engine says while it computes, kept with the record instead of printed.

:func:`captured` collects, for the duration of one task, the warnings (:mod:`warnings`) and the
log records at WARNING and above of the QM libraries (geomeTRIC, PySCF, basis-set-exchange, tblite,
psi4's driver), as one-line strings; the task puts them into the record's provenance
(``provenance["engine_log"][task]``), so they are never printed over a progress bar and are still
there to read (``hessflow -v`` shows them on the terminal as well, see :mod:`hessflow.cli`).
"""

from __future__ import annotations

import contextlib
import logging
import warnings

__all__ = ["ENGINE_LOGGERS", "MAX_LINES", "captured"]

#: the loggers of the QM libraries
ENGINE_LOGGERS = ("geometric", "pyscf", "basis_set_exchange", "tblite", "psi4")
#: at most this many lines per task are kept (the last one says how many were left out)
MAX_LINES = 50


class _Collect(logging.Handler):
    def __init__(self, lines: list):
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record):
        try:
            self.lines.append(f"{record.name}: {record.levelname}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a malformed log call must not fail the task
            pass


@contextlib.contextmanager
def captured():
    """``with captured() as lines:`` — the engine's warnings and WARNING+ log records of the
    block, as one-line strings (at most :data:`MAX_LINES`, whitespace collapsed)."""
    lines: list[str] = []
    handler = _Collect(lines)
    loggers = [logging.getLogger(n) for n in ENGINE_LOGGERS]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        if lg.level == logging.NOTSET or lg.level > logging.WARNING:
            lg.setLevel(logging.WARNING)
        lg.addHandler(handler)
        lg.propagate = False  # kept here, not printed by the root logger's last-resort handler
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield lines
    finally:
        for lg, level, propagate in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
        lines.extend(f"{w.category.__name__}: {w.message}" for w in caught)
        tidy = [" ".join(str(x).split())[:300] for x in lines]
        if len(tidy) > MAX_LINES:
            tidy = tidy[:MAX_LINES - 1] + [f"... {len(tidy) - MAX_LINES + 1} more lines"]
        lines[:] = tidy
