"""Open formats, both ways: hessflow records out to the tools people already use, their
molecules in. Layer: above :mod:`hessflow.store`, below workflows and the API (imports qm, store
and base only). See ``docs/formats.md``.

- :mod:`~hessflow.formats.extxyz`: extended XYZ in ASE's conventions (energy eV, forces
  eV/Angstrom), written and read back (hessflow's own and ASE-written files);
- :mod:`~hessflow.formats.asedb`: an ASE database (labels as key-value pairs, Hessian, modes and
  tensors in ``data``), read back; a record as ASE ``VibrationsData``;
- :mod:`~hessflow.formats.qcschema`: records as qcelemental ``AtomicResult``; QCSchema molecules
  as input;
- :mod:`~hessflow.formats.qm9`: QM9's extended XYZ and CSV;
- :mod:`~hessflow.formats.ase_input`: molecules from any file ``ase.io.read`` reads, from
  ``ase.Atoms`` and from RDKit molecules;
- :mod:`~hessflow.formats.export`: :func:`~hessflow.formats.export.export_records`, every
  writer by format name (what ``hessflow export --format`` dispatches to);
- :mod:`~hessflow.formats.common`: what they share (geometry, labels, forces in ASE's units).

The submodules import ASE, qcelemental or RDKit; this package imports none of them.
"""
