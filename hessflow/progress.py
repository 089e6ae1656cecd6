"""Progress of a run over molecules: the progress bar and the summary of what was done.

Used by ``hessflow compute`` (:mod:`hessflow.api`) and ``hessflow run``
(:mod:`hessflow.workflows.graph`) alike.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

#: environment variable read by the training loop: "1" per-epoch lines on rank 0, "0" none
#: (set by the training commands, inherited by every rank they start)
PROGRESS_ENV = "HESSFLOW_PROGRESS"


@dataclasses.dataclass
class Summary:
    """What a run did: molecules ``done``, ``skipped`` (already complete in the store) and
    ``failed``; ``rows`` are ``(name, status, record or reason)`` for the summary table;
    ``stage_lines`` the downstream stages' one-line results, ``stage_failed`` whether one failed;
    ``wall_s`` the run's seconds (set by ``hessflow run``); ``stopped`` the signal that ended
    it early, if one did (its unfinished molecules count as failed, to be resumed)."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    rows: list = dataclasses.field(default_factory=list)
    stage_lines: list = dataclasses.field(default_factory=list)
    stage_failed: bool = False
    wall_s: float = 0.0
    stopped: str = ""  # the signal that stopped the run early ("SIGINT", "SIGTERM"), else ""

    @property
    def line(self) -> str:
        """``done=N skipped=M failed=K``."""
        return f"done={self.done} skipped={self.skipped} failed={self.failed}"


def counts_text(done: int, failed: int, running=0, stage: str = "") -> str:
    """The bar's postfix of a run over molecules: ``done=12 failed=1 running=opt:3,freq:5
    stage=train`` (``running``: a count, or task -> count; ``stage``: the step it is in)."""
    if isinstance(running, dict):
        running = ",".join(f"{k}:{v}" for k, v in running.items() if v) or "0"
    return f"done={done} failed={failed} running={running}" + (f" stage={stage}" if stage else "")


class NoBar:
    """A progress bar that shows nothing (``--no-progress``): the calls of :class:`Bar`, as
    no-ops; :meth:`write` still prints its line."""

    def update(self, *a):
        pass

    def set_postfix_str(self, *a):
        pass

    def counts(self, *a, **k):
        pass

    def close(self):
        pass

    def write(self, text: str, file=None) -> None:
        """Print ``text`` as a line of its own (on ``file``, default stderr)."""
        print(text, file=file or sys.stderr, flush=True)

    def lines(self, stream):
        """A file-like object for ``print(..., file=...)`` whose lines go above the bar (no bar:
        ``stream`` itself)."""
        return stream


class Bar(NoBar):
    """tqdm's bar over a run's items on stderr. :meth:`write` prints a line above the bar
    (never onto it: an error line stays readable), :meth:`counts` shows done / failed /
    running and the stage in the bar's postfix."""

    def __init__(self, total: int, unit: str = "mol", stream=None):
        from tqdm import tqdm
        self.stream = sys.stderr if stream is None else stream
        self._tqdm = tqdm(total=total, unit=unit, dynamic_ncols=True, file=self.stream)

    def update(self, n: int = 1):
        self._tqdm.update(n)

    def set_postfix_str(self, text: str):
        self._tqdm.set_postfix_str(text)

    def counts(self, done: int, failed: int, running=0, stage: str = ""):
        """Show :func:`counts_text` in the postfix."""
        self._tqdm.set_postfix_str(counts_text(done, failed, running, stage))

    def close(self):
        self._tqdm.close()

    def write(self, text: str, file=None) -> None:
        file = file or self.stream
        if file is self.stream:
            self._tqdm.write(text, file=file)
        else:
            print(text, file=file, flush=True)

    def lines(self, stream):
        """A file-like object for ``print(..., file=...)``: each complete line is written above
        the bar when ``stream`` is the bar's own, else straight to ``stream``."""
        return stream if stream is not self.stream else _AboveBar(self)


class _AboveBar:
    """``write``/``flush`` of a text stream, each complete line handed to :meth:`Bar.write`."""

    def __init__(self, bar: Bar):
        self.bar, self.buffer = bar, ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self.bar.write(line)
        return len(text)

    def flush(self) -> None:
        if self.buffer:
            self.bar.write(self.buffer)
            self.buffer = ""


def progress_bar(total: int, enabled: bool, unit: str = "mol"):
    """A :class:`Bar` over ``total`` items (``unit`` names them) on stderr, or :class:`NoBar`
    when not ``enabled``."""
    return Bar(total, unit) if enabled else NoBar()


def progress_from_env(default: bool, name: str) -> str | None:
    """The label of the progress lines, or None for none: :data:`PROGRESS_ENV` when set ("0":
    none, "1": ``name``, any other text: on, with that text as the label, e.g. ``bp train``),
    else ``name`` if ``default``."""
    v = os.environ.get(PROGRESS_ENV)
    if v is None:
        return name if default else None
    v = v.strip()
    if v in ("", "0", "false", "no"):
        return None
    return name if v in ("1", "true", "yes") else v


def duration(seconds: float) -> str:
    """``seconds`` as ``1h02m``, ``3m05s`` or ``12s``."""
    s = int(round(max(seconds, 0.0)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class EpochProgress:
    """One line per epoch on ``stream`` (stderr)::

        train epoch   3/50  loss=0.2311  val MAE=4.127 Bohr^3  1.92 s/epoch  ETA 1m30s

    ``name``: the command's label; ``total``: epochs at most (the ETA assumes they all run;
    early stopping can end sooner)."""

    def __init__(self, name: str, total: int, stream=None):
        self.name, self.total = name, int(total)
        self.stream = sys.stderr if stream is None else stream
        self.t_last = time.perf_counter()
        self.seconds: list[float] = []

    def line(self, epoch: int, loss: float, metric: tuple | None, seconds: float) -> str:
        """The text of epoch ``epoch`` (0-based): training ``loss``, ``metric`` as
        ``(label, value, unit)`` and the epoch's ``seconds``."""
        self.seconds.append(seconds)
        recent = self.seconds[-5:]
        per = sum(recent) / len(recent)
        width = len(str(self.total))
        cells = [f"{self.name} epoch {epoch + 1:{width}d}/{self.total}", f"loss={loss:.4g}"]
        if metric is not None:
            label, value, unit = metric
            cells.append(f"{label}={value:.4g}" + (f" {unit}" if unit else ""))
        cells.append(f"{per:.2f} s/epoch")
        cells.append(f"ETA {duration(per * max(self.total - epoch - 1, 0))}")
        return "  ".join(cells)

    def epoch(self, epoch: int, loss: float, metric: tuple | None = None) -> None:
        """Print the line of epoch ``epoch`` (seconds measured since the previous line)."""
        now = time.perf_counter()
        seconds, self.t_last = now - self.t_last, now
        print(self.line(epoch, loss, metric, seconds), file=self.stream, flush=True)


__all__ = ["Summary", "NoBar", "Bar", "counts_text", "progress_bar", "PROGRESS_ENV", "progress_from_env", "duration",
           "EpochProgress"]
