"""Molecules: elements, the :class:`Molecule` object, input files and RDKit conformers.

Pure chemistry: nothing here runs a QM engine or knows about records or stores.
"""
