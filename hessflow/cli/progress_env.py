"""Progress switched on or off for every rank of a training run: the environment variable
:data:`hessflow.progress.PROGRESS_ENV` that :mod:`hessflow.ml.core.training` reads (ranks
started by ``mpiexec``/``srun`` inherit it)."""

from __future__ import annotations

import contextlib
import os

from ..progress import PROGRESS_ENV

__all__ = ["progress_env"]


@contextlib.contextmanager
def progress_env(enabled: bool, label: str = "1"):
    """Within the block, training loops print their per-epoch lines (``enabled``; ``label``
    starts each line, "1": the loop's own) or not."""
    old = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = label if enabled else "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = old
