"""Molecule input: SMILES files, CSV, XYZ (single and multi-frame), SDF and QM9's extended XYZ.

:func:`read_molecules` yields one item per molecule: a validated :class:`Molecule`, or an
:class:`InputFailure` naming the molecule and the reason. One bad molecule never stops the others.

Formats (chosen by file extension):
  ``.smi``/``.smiles``/``.txt``: ``SMILES [name] [charge=Q] [mult=M] [complex=yes]`` per line;
      lines starting with ``#`` are comments (inside a line ``#`` is SMILES' triple bond);
  ``.csv``: a header with a ``smiles`` column and optional ``name``/``mol_id``, ``charge``,
      ``multiplicity``, ``complex``; other numeric columns are kept as reference labels (e.g.
      QM9's CSV);
  ``.xyz``: standard XYZ, any number of frames; the comment line may hold ``charge=Q mult=M`` and a
      name; a QM9 file (comment line starting ``gdb``) is parsed as QM9 extended XYZ;
  ``.sdf``/``.mol``: RDKit, explicit hydrogens kept; 2D records are embedded like SMILES.

Files are UTF-8 text (a byte-order mark is dropped); a binary file or one in another encoding is
refused in one line, and inside a directory it is one failure while the other files go on.
Isotope labels (``[2H]``, SDF isotopes) give isotope masses. A SMILES of several fragments
(``CC(=O)[O-].[Na+]``) is a failure of its line unless that line asks for a complex
(``complex=yes``, a CSV ``complex`` column) or the reader is called with ``fragments=True``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from ...errors import InputError
from ...units import ANGSTROM_BOHR
from . import conformers
from .elements import atomic_number
from .molecule import Molecule

QM9_PROPERTIES = ("tag", "index", "A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2",
                  "zpve", "U0", "U", "H", "G", "Cv")


@dataclasses.dataclass
class InputFailure:
    """A molecule that could not be read; ``raw`` is what the input said (SMILES or file:line)."""
    name: str
    reason: str
    raw: str = ""
    source: str = ""

    def __str__(self):
        return f"{self.name}: {self.reason}"


Item = Union[Molecule, InputFailure]

_KV = re.compile(r"^(charge|q|mult|multiplicity|spin)=(-?\d+)$", re.I)
_YES, _NO = ("yes", "true", "1", "y"), ("no", "false", "0", "n", "")


def _complex(value, name: str, default: bool) -> bool:
    """A ``complex`` setting of one input line (yes/no, true/false, 1/0; empty: ``default``)."""
    v = str(value if value is not None else "").strip().lower()
    if not v:
        return default
    if v in _YES:
        return True
    if v in _NO:
        return False
    raise InputError(name, f"complex={value!r}: expected yes or no")


def _split_complex(tokens):
    """``(complex value or None, other tokens)`` of a SMILES line's tokens."""
    value, rest = None, []
    for t in tokens:
        if t.lower().startswith("complex="):
            value = t.split("=", 1)[1]
        else:
            rest.append(t)
    return value, rest


def _float(tok: str) -> float:
    return float(tok.replace("*^", "e"))  # QM9 writes Fortran-style exponents as 1.2*^-6


def _kv(tokens):
    """Split key=value charge/multiplicity tokens from the rest."""
    charge = mult = None
    rest = []
    for t in tokens:
        m = _KV.match(t)
        if not m:
            rest.append(t)
            continue
        k, v = m.group(1).lower(), int(m.group(2))
        if k in ("charge", "q"):
            charge = v
        else:
            mult = v
    return charge, mult, rest


def read_text(path: Path) -> str:
    """The text of an input file: UTF-8, a byte-order mark (Excel's "CSV UTF-8") dropped. Raises
    :class:`InputError` naming the file for binary data, another encoding (with the line of the
    first bad byte) or a file that cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if b"\0" in data[:65536]:
        raise InputError(str(path), "binary data, not a text file of molecules")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(str(path), f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                                    f"if it is Latin-1, convert it: iconv -f latin1 -t utf-8") from None


def guarded(name, raw, source, fn) -> Item:
    """``fn()``, or the :class:`InputFailure` of whatever it raised (one line: an InputError's own
    name and reason, else the exception type and first line)."""
    try:
        return fn()
    except InputError as exc:
        return InputFailure(exc.name, exc.reason, raw, source)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes a recorded failure
        return InputFailure(name, f"{type(exc).__name__}: {exc}".splitlines()[0], raw, source)


def read_smiles_file(path: Path, seed: int = conformers.DEFAULT_SEED, embed: bool = True,
                     fragments: bool = False) -> Iterator[Item]:
    """The molecules of a SMILES file (module docstring); ``seed``: RDKit's embedding seed;
    ``embed=False`` defers the conformer (``Molecule.needs_conformer``); ``fragments``: every
    line may be a complex (a line's own ``complex=`` decides first)."""
    n = 0
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        line = "" if line.lstrip().startswith("#") else line.strip()  # '#' is a triple bond
        if not line:
            continue
        n += 1
        cplx, toks = _split_complex(line.split())
        charge, mult, rest = _kv(toks)
        smi = rest[0] if rest else ""
        name = " ".join(rest[1:]) or f"{path.stem}:{lineno}"
        src = f"{path}:{lineno}"
        yield guarded(name, line, src, lambda: conformers.from_smiles(
            smi, name, charge, mult, seed=seed, source=src, embed_now=embed,
            fragments=_complex(cplx, name, fragments)))
    if n == 0:
        raise InputError(str(path), "empty file: no molecules")


def read_csv(path: Path, seed: int = conformers.DEFAULT_SEED, embed: bool = True,
             fragments: bool = False) -> Iterator[Item]:
    """The molecules of a CSV file with a ``smiles`` column (module docstring); ``seed``,
    ``embed`` and ``fragments`` as for :func:`read_smiles_file`."""
    with io.StringIO(read_text(path), newline="") as fh:
        reader = csv.DictReader(fh)
        fields = {f.lower(): f for f in (reader.fieldnames or [])}
        if "smiles" not in fields:
            raise InputError(str(path), "CSV has no 'smiles' column")
        n = 0
        for lineno, row in enumerate(reader, 2):
            n += 1
            smi = row[fields["smiles"]]
            name = (row.get(fields.get("name", ""), "") or row.get(fields.get("mol_id", ""), "")
                    or f"{path.stem}:{lineno}")
            charge = row.get(fields.get("charge", ""), "") or None
            mult = row.get(fields.get("multiplicity", ""), "") or None
            cplx = row.get(fields.get("complex", ""), "")
            ref = {}
            for k, v in row.items():
                if k is None or k.lower() in ("smiles", "name", "mol_id", "charge", "multiplicity",
                                              "complex"):
                    continue
                try:
                    ref[k] = float(v)
                except (TypeError, ValueError):
                    pass
            src = f"{path}:{lineno}"
            raw = ",".join(str(v) for v in row.values() if v is not None)
            yield guarded(name, raw, src, lambda: conformers.from_smiles(
                smi, name, None if charge is None else int(charge),
                None if mult is None else int(mult), seed=seed, source=src,
                extra={"reference": ref} if ref else None, embed_now=embed,
                fragments=_complex(cplx, name, fragments)))
        if n == 0:
            raise InputError(str(path), "empty file: no molecules")


def xyz_frames(path: Path):
    """The frames of an XYZ file, one ``(frame, start_line, block, error)`` at a time.

    ``frame`` counts from 1, ``start_line`` is the 1-based line of the atom count, ``block`` the
    frame's lines (count, comment, atoms; plus QM9's three trailing lines), ``error`` None or a
    one-line reason (then ``block`` is None and no frame follows)."""
    lines = read_text(path).splitlines()
    i = 0
    frame = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        frame += 1
        start = i + 1
        try:
            nat = int(lines[i].split()[0])
        except ValueError:
            yield frame, start, None, f"line {start}: expected an atom count, got {lines[i]!r}"
            return
        if nat <= 0:
            yield frame, start, None, f"line {start}: atom count {nat} must be positive"
            return
        block = lines[i:i + 2 + nat]
        # QM9 files carry three trailing lines (frequencies, SMILES, InChI) after the atoms
        if len(block) >= 2 and block[1].startswith("gdb"):
            block = lines[i:i + 2 + nat + 3]
        if len(block) < 2 + nat:
            yield frame, start, None, f"frame {frame}: file ends after {len(block) - 2} of {nat} atoms"
            return
        yield frame, start, block, None
        i += len(block)


def parse_atoms(lines, name):
    """``(numbers, coords_bohr, extra_cols)`` of XYZ atom lines ``SYMBOL x y z [more...]`` with
    coordinates in Angstrom; ``extra_cols`` are the numbers after x y z per line (QM9's charges).
    Raises :class:`InputError` naming the molecule ``name``."""
    numbers, coords, extra_cols = [], [], []
    for ln in lines:
        t = ln.split()
        if len(t) < 4:
            raise InputError(name, f"bad atom line {ln!r}")
        try:
            numbers.append(atomic_number(t[0]))
        except KeyError as exc:
            raise InputError(name, exc.args[0]) from None
        coords.append([_float(x) for x in t[1:4]])
        extra_cols.append([_float(x) for x in t[4:]])
    return np.array(numbers), np.array(coords) * ANGSTROM_BOHR, extra_cols


def _qm9_molecule(block, path: Path, src: str) -> Molecule:
    nat = int(block[0].split()[0])
    props = block[1].split()
    name = f"gdb_{props[1]}" if len(props) > 1 else path.stem
    if len(props) != len(QM9_PROPERTIES):
        raise InputError(name, f"QM9 property line has {len(props)} fields, expected "
                               f"{len(QM9_PROPERTIES)}")
    numbers, coords, cols = parse_atoms(block[2:2 + nat], name)
    ref = {k: _float(v) for k, v in zip(QM9_PROPERTIES[2:], props[2:])}
    freqs = [_float(x) for x in block[2 + nat].split()]
    smiles_gdb, smiles_relaxed = (block[3 + nat].split() + ["", ""])[:2]
    inchis = block[4 + nat].split()
    smiles = ""
    if smiles_relaxed or smiles_gdb:
        try:
            rd = conformers.parse_smiles(smiles_relaxed or smiles_gdb, name)
            smiles = conformers.canonical_smiles(rd)
        except InputError:
            smiles = ""
    mol = Molecule(name=name, numbers=numbers, coords_bohr=coords, charge=0, multiplicity=1,
                   smiles=smiles, source=src,
                   extra={"reference": ref, "reference_frequencies_cm1": freqs,
                          "mulliken_charges": [c[0] for c in cols if c],
                          "smiles_gdb": smiles_gdb, "smiles_relaxed": smiles_relaxed,
                          "inchi": inchis})
    return mol.validate()


def read_xyz(path: Path, embed: bool = True) -> Iterator[Item]:  # coordinates are given
    """The frames of an XYZ file (Angstrom, converted to Bohr), or of a QM9 extended XYZ file with
    its reference labels; ``embed`` is accepted for a uniform signature (XYZ has coordinates)."""
    n = 0
    for frame, start, block, err in xyz_frames(path):
        src = f"{path}:{start}"
        name = f"{path.stem}" + (f"#{frame}" if frame > 1 else "")
        n += 1
        if err:
            yield InputFailure(name, err, src, src)
            return
        if block[1].startswith("gdb"):
            yield guarded(name, src, src, lambda: _qm9_molecule(block, path, src))
            continue

        def build(block=block, name=name, src=src, frame=frame):
            nat = int(block[0].split()[0])
            charge, mult, rest = _kv(block[1].split())
            nm = " ".join(rest) if rest else name
            numbers, coords, _ = parse_atoms(block[2:2 + nat], nm)
            return Molecule(name=nm, numbers=numbers, coords_bohr=coords,
                            charge=charge or 0, multiplicity=mult or 1,
                            source=src).validate()
        yield guarded(name, src, src, build)
    if n == 0:
        raise InputError(str(path), "empty file: no molecules")


def read_sdf(path: Path, seed: int = conformers.DEFAULT_SEED, embed: bool = True,
             fragments: bool = False) -> Iterator[Item]:
    """The records of an SDF/MOL file (explicit hydrogens kept; 2D records embedded with
    ``seed`` like SMILES, or deferred with ``embed=False``; a 2D record of several fragments
    only with ``fragments``); isotope labels give isotope masses."""
    from rdkit import Chem
    conformers._rdkit()
    supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True)
    n = 0
    for i, rd in enumerate(supplier, 1):
        n += 1
        src = f"{path}#{i}"
        if rd is None:
            yield InputFailure(f"{path.stem}#{i}", "RDKit cannot parse this SDF record", src, src)
            continue
        name = rd.GetProp("_Name").strip() if rd.HasProp("_Name") else ""
        name = name or f"{path.stem}#{i}"

        def build(rd=rd, name=name, src=src):
            charge, mult = conformers.charge_multiplicity(rd)
            if rd.HasProp("multiplicity"):
                mult = int(rd.GetProp("multiplicity"))
            conf = rd.GetConformer() if rd.GetNumConformers() else None
            if conf is None or not conf.Is3D():
                conformers.check_fragments(rd, name, fragments)
                heavy = Chem.RemoveHs(rd)
                numbers, coords = conformers.embed(heavy, name, seed)
                masses = conformers.atom_masses(Chem.AddHs(heavy), name)
            else:
                numbers = np.array([a.GetAtomicNum() for a in rd.GetAtoms()])
                coords = conf.GetPositions() * ANGSTROM_BOHR
                masses = conformers.atom_masses(rd, name)
            bad = sorted({int(z) for z in numbers} - set(conformers.SUPPORTED_Z))
            if bad:
                raise InputError(name, f"unsupported element(s) Z={bad}")
            return Molecule(name=name, numbers=numbers, coords_bohr=coords, charge=charge,
                            multiplicity=mult, smiles=conformers.canonical_smiles(rd),
                            source=src, masses=masses).validate()
        yield guarded(name, src, src, build)
    if n == 0:
        raise InputError(str(path), "empty file: no molecules")


READERS = {".smi": read_smiles_file, ".smiles": read_smiles_file, ".txt": read_smiles_file,
           ".csv": read_csv, ".xyz": read_xyz, ".extxyz": read_xyz, ".sdf": read_sdf,
           ".mol": read_sdf}


def _file_items(path: Path, embed: bool, seed: int, fragments: bool) -> Iterator[Item]:
    """The items of one file of a directory input: a file that cannot be read at all (binary,
    another encoding, empty) is one failure, and the directory's other files go on."""
    try:
        yield from read_molecules(path, embed=embed, seed=seed, fragments=fragments)
    except InputError as exc:
        yield InputFailure(path.name, exc.reason, str(path), str(path))


def read_molecules(path, limit: int | None = None, embed: bool = True,
                   seed: int = conformers.DEFAULT_SEED, fragments: bool = False) -> Iterator[Item]:
    """Molecules (or failures) from one file, or from every readable file in a directory
    (e.g. the unpacked QM9 ``dsgdb9nsd_*.xyz`` files). Raises InputError for a missing, empty
    or unknown-format file. ``embed=False`` defers SMILES embedding (``Molecule.needs_conformer``);
    ``fragments=True`` takes a multi-fragment SMILES as a complex (module docstring)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in READERS)
        if not files:
            raise InputError(str(path), "directory holds no molecule files")
        items = (it for f in files for it in _file_items(f, embed, seed, fragments))
    else:
        if not path.exists():
            raise InputError(str(path), "no such file")
        if path.stat().st_size == 0:
            raise InputError(str(path), "empty file: no molecules")
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            raise InputError(str(path), f"unknown input format {path.suffix!r} "
                                        f"(known: {', '.join(sorted(READERS))})")
        items = (reader(path, embed=embed) if reader is read_xyz
                 else reader(path, seed, embed, fragments))
    for i, item in enumerate(items):
        if limit is not None and i >= limit:
            return
        yield item

