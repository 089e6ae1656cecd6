"""The hessflow HDF5 store: one file per dataset, columnar, crash-safe, one writer at a time.

- :mod:`~hessflow.store.schema`: the record's fields as HDF5 columns, and a record normalised into
  them (the fields themselves, their units and shapes: :mod:`hessflow.qm.record`);
- :mod:`~hessflow.store.checksum`: the CRC32 of every field of every record;
- :mod:`~hessflow.store.columns`: the file's layout, rows written and read;
- :mod:`~hessflow.store.reader`: the file's index, columns and rows read, checked on the way;
- :mod:`~hessflow.store.log`: the write-ahead log (``FILE.h5.wal``) codec;
- :mod:`~hessflow.store.journal`: the rollback journal of an in-place checkpoint, and recovery;
- :mod:`~hessflow.store.update`: the file created and updated in place through the journal;
- :mod:`~hessflow.store.lock`: one writer, and no reader inside a checkpoint;
- :mod:`~hessflow.store.fileio`: checked writes (every byte, or an error);
- :mod:`~hessflow.store.view`: the loaded index and the read API (what readers use);
- :mod:`~hessflow.store.budget`: when a writer checkpoints (:class:`StoreSettings`);
- :mod:`~hessflow.store.store`: :class:`Store`, which opens a store and writes it;
- :mod:`~hessflow.store.verify`: :func:`verify`, a whole store checked, read-only.

See ``docs/store.md``.
"""

from .schema import FORMAT, SCHEMA_VERSION
from .store import Store, StoreSettings
from .verify import VerifyReport, verify

__all__ = ["FORMAT", "SCHEMA_VERSION", "Store", "StoreSettings", "VerifyReport", "verify"]
