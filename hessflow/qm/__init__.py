"""Quantum-chemistry stage: molecule input, conformers, engines, harmonic analysis, properties."""
