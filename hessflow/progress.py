"""The progress bar of long loops (molecules computed, workflow results committed)."""

from __future__ import annotations

import sys


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


__all__ = ["NoBar", "progress_bar"]
