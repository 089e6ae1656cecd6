"""The machine this process runs on: usable CPU cores and the torch device (base layer).

One place for the two questions every layer asks: how many cores may I use (the affinity mask
that Slurm, taskset or a container sets, not the machine's total), and which torch device does
a setting such as ``"auto"`` mean. Pure standard library; torch is imported only inside
:func:`torch_device`, so importing this module never loads it.
"""

from __future__ import annotations

import os

__all__ = ["cpu_count", "torch_device"]


def cpu_count() -> int:
    """Cores this process may run on (at least 1): the size of its affinity mask where the
    platform has one (Linux), else :func:`os.cpu_count`."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def torch_device(requested: str | None = "auto", local_rank: int = 0):
    """The ``torch.device`` for a device setting.

    ``requested``: ``"auto"`` (or None / empty: a GPU when one is visible, else the CPU),
    ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. ``local_rank``: this process's rank on its node; a
    bare ``"cuda"`` or ``"auto"`` on a GPU node picks GPU ``local_rank`` modulo the visible
    GPUs (one GPU per rank), an explicit ``"cuda:N"`` is taken as given. Raises
    :class:`~hessflow.errors.HessflowError` when CUDA is asked for and no GPU is visible."""
    import torch

    from .errors import HessflowError
    name = "auto" if requested in (None, "") else str(requested)
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise HessflowError("device: CUDA requested but no GPU is visible")
    if name.startswith("cuda:"):
        return torch.device(name)
    return torch.device(f"cuda:{local_rank % max(1, torch.cuda.device_count())}")
