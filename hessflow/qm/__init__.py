"""Quantum-chemistry stage: from a molecule to a record of its QM results.

Rooms, bottom to top (each imports only those before it, and the base modules)::

    molecules/   elements, Molecule, input files, RDKit conformers (pure chemistry)
    basis_library  the basis files hessflow ships (Gaussian's 6-31G(2df,p)), keyed by digest
    level        Level: method, basis and numerical settings (atomic units)
    engines/     one module per QM program behind engines.base.Engine; a registry with
                 entry-point discovery (group "hessflow.engines")
    harmonic     normal modes, frequencies, ZPVE from a Hessian
    properties   alpha/beta invariants
    tasks        run_opt / run_freq / run_single_point / run_polar / run_hyperpolar
    fallback     the fallback ladder: one task run with corrections (and test fault injection)
    record       the record's fields and their empty values
    assemble     keys, new records, merging task outcomes (provenance), the re-optimisation
                 rule, compute_record (hessflow compute); the workflow uses the same functions
"""
