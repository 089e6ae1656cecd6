"""One entry point for writing records in an open format: :func:`export_records` by format name.

Text formats (returned as text, written to ``out`` when given): ``extxyz``, ``qcschema``
(JSON Lines of AtomicResult), ``qm9-csv``. File formats (``out`` required): ``asedb`` (an ASE
database file, ``.db`` or ``.json``), ``qm9`` (a directory of ``dsgdb9nsd_NNNNNN.xyz`` files).
:data:`ATOMIZATION_FORMATS` write atomization energies, given free-atom energies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..errors import HessflowError
from ..settings import did_you_mean
from . import asedb, extxyz, qcschema, qm9

TEXT_FORMATS = {
    "extxyz": extxyz.extxyz_text,
    "qcschema": qcschema.qcschema_text,
    "qm9-csv": qm9.qm9_csv_text,
}
FILE_FORMATS = {"asedb": asedb.write_asedb, "qm9": qm9.write_qm9_xyz}
FORMATS = tuple(TEXT_FORMATS) + tuple(FILE_FORMATS)
#: the formats with atomization energies (``atom_energies`` of :func:`export_records`)
ATOMIZATION_FORMATS = ("qm9-csv",)
#: the formats whose thermochemistry is QM9's: 298.15 K and 1 atm only
QM9_CONDITIONS_FORMATS = ("qm9", "qm9-csv")
#: the open formats that carry a record's derived labels (``derived`` of :func:`export_records`:
#: thermochemistry and atomization energies in hessflow's names, atomic units)
DERIVED_FORMATS = ("extxyz", "asedb", "qcschema")


def export_records(records: Iterable[dict], fmt: str, out=None, atom_energies=None,
                   derived=None) -> str:
    """Write ``records`` (store records, usually the ``done`` ones) in format ``fmt`` (one of
    :data:`FORMATS`). A text format returns its text and also writes it to ``out`` when given;
    a file format writes ``out`` (a file, or for ``qm9`` a directory) and returns "".
    ``atom_energies``: record -> {Z: Hartree} free-atom energies at its level, for the
    atomization energies of :data:`ATOMIZATION_FORMATS` (None: left empty; see
    :func:`hessflow.formats.labels.atom_energies_for`). ``derived``: record -> the labels it
    implies (:func:`hessflow.formats.labels.derived_labels`), written by
    :data:`DERIVED_FORMATS` (None: none).
    Raises :class:`HessflowError` for an unknown format or a file format without ``out``."""
    if fmt in TEXT_FORMATS:
        options = {"atom_energies": atom_energies} if fmt in ATOMIZATION_FORMATS else {}
        if fmt in DERIVED_FORMATS:
            options["derived"] = derived
        text = TEXT_FORMATS[fmt](records, **options)
        if out is not None:
            Path(out).write_text(text)
        return text
    if fmt not in FILE_FORMATS:
        raise HessflowError(f"--format: {fmt!r} is not a known format{did_you_mean(fmt, FORMATS)}")
    if out is None:
        raise HessflowError(f"--format {fmt}: writes a {'directory' if fmt == 'qm9' else 'file'};"
                            " give -o/--output")
    FILE_FORMATS[fmt](records, out, **({"derived": derived} if fmt in DERIVED_FORMATS else {}))
    return ""
