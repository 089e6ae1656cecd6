"""Progress of a run over molecules: the progress bar and the summary of what was done.

Used by ``hessflow compute`` (:mod:`hessflow.api`) and ``hessflow run``
(:mod:`hessflow.workflows.graph`) alike.
"""

from __future__ import annotations

import dataclasses
import sys


@dataclasses.dataclass
class Summary:
    """What a run did: molecules ``done``, ``skipped`` (already complete in the store) and
    ``failed``; ``rows`` are ``(name, status, record or reason)`` for the summary table;
    ``stage_lines`` the downstream stages' one-line results, ``stage_failed`` whether one failed;
    ``wall_s`` the run's seconds (set by ``hessflow run``)."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    rows: list = dataclasses.field(default_factory=list)
    stage_lines: list = dataclasses.field(default_factory=list)
    stage_failed: bool = False
    wall_s: float = 0.0

    @property
    def line(self) -> str:
        """``done=N skipped=M failed=K``."""
        return f"done={self.done} skipped={self.skipped} failed={self.failed}"


class NoBar:
    """A progress bar that shows nothing (``--no-progress``): the calls of tqdm's bar, as no-ops."""

    def update(self, *a):
        pass

    def set_postfix_str(self, *a):
        pass

    def close(self):
        pass


def progress_bar(total: int, enabled: bool, unit: str = "mol"):
    """A tqdm bar over ``total`` items (``unit`` names them) on stderr, or :class:`NoBar` when
    not ``enabled``."""
    if not enabled:
        return NoBar()
    from tqdm import tqdm
    return tqdm(total=total, unit=unit, dynamic_ncols=True, file=sys.stderr)


__all__ = ["Summary", "NoBar", "progress_bar"]
