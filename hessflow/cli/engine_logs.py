"""What the engines may print on the terminal: nothing by default (their warnings and log
records are filtered in this process), everything with ``hessflow -v``.

geomeTRIC, PySCF, basis-set-exchange and Parsl write through :mod:`warnings` and :mod:`logging`;
without ``-v`` their warnings are ignored and their loggers raised to ERROR for the command's
duration, so nothing is printed over the progress bar. ``-v`` lets them through at INFO on
stderr, ``-vv`` at DEBUG.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings

__all__ = ["ENGINE_LOGGERS", "engine_logs"]

#: the libraries whose output ``-v`` shows
ENGINE_LOGGERS = ("geometric", "pyscf", "basis_set_exchange", "parsl", "tblite", "psi4", "rdkit",
                  "h5py", "matplotlib")
_MODULES = r"(geometric|pyscf|basis_set_exchange|parsl|tblite|psi4|rdkit)(\..*)?"


@contextlib.contextmanager
def engine_logs(verbose: int = 0, quiet: bool = False):
    """Within the block: engine warnings and logs hidden (``verbose`` 0), or shown on stderr at
    INFO (1) or DEBUG (2 and more). ``quiet`` hides them even with ``verbose``."""
    loggers = [logging.getLogger(n) for n in ENGINE_LOGGERS]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    handler = None
    with warnings.catch_warnings():
        if verbose and not quiet:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
            for lg in loggers:
                lg.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
                lg.addHandler(handler)
        else:
            warnings.filterwarnings("ignore", module=_MODULES)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            for lg in loggers:
                lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level, propagate in saved:
                lg.setLevel(level)
                lg.propagate = propagate
                if handler is not None:
                    lg.removeHandler(handler)
