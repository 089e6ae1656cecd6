"""The writer's checkpoint budget: when the log is merged into the HDF5 file during a run.

:class:`StoreSettings` says when (log bytes, records waiting, age of the oldest waiting record)
and whether each put is fsync'ed; :class:`CheckpointTimer` is the daemon thread that keeps the
time budget when no more records come.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref

from ..settings import meta


@dataclasses.dataclass
class StoreSettings:
    """When a writer checkpoints its log into the HDF5 file, and whether each put is fsync'ed."""
    checkpoint_bytes: int = dataclasses.field(
        default=64 << 20, metadata=meta("checkpoint once the log holds this many bytes",
                                        minimum=0, unit="bytes"))
    checkpoint_records: int = dataclasses.field(
        default=1000, metadata=meta("checkpoint once this many records wait in the log "
                                    "(0: no record budget)", minimum=0))
    checkpoint_seconds: float = dataclasses.field(
        default=60.0, metadata=meta("checkpoint once the oldest record waiting in the log is this "
                                    "old, even if no more come (0: no time budget)", minimum=0.0,
                                    unit="s"))
    durable: bool = dataclasses.field(
        default=True, metadata=meta("fsync the log before put returns (False: faster, but a "
                                    "crash can lose the records put since the last fsync)"))


class CheckpointTimer:
    """The writer's time budget: a daemon thread that checkpoints once the oldest record waiting
    in the log is ``seconds`` old, even when no more records come."""

    def __init__(self, store, seconds: float):
        """Watch ``store`` (a writing :class:`~hessflow.store.store.Store`, held weakly)."""
        self._stop = threading.Event()
        ref = weakref.ref(store)
        tick = max(0.05, min(seconds / 4, 5.0))

        def run():
            while not self._stop.wait(tick):
                st = ref()
                if st is None or st._closed:
                    return
                if st._lock.acquire(blocking=False):
                    try:
                        if not st._closed and st._due():
                            st._auto_checkpoint()
                    finally:
                        st._lock.release()
                del st
        self._thread = threading.Thread(target=run, name=f"hessflow-checkpoint:{store.path.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self):
        """End the thread (after the checkpoint it may be in)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


__all__ = ["CheckpointTimer", "StoreSettings"]
