"""The element-coupled Behler–Parrinello network on element-channel ACSF: energies, forces,
training, evaluation, and "alchemical" interpolation between element assignments.

One concept per module:

- :mod:`.element_data` — the per-element property table (H–Ca, Br, I; cited sources);
- :mod:`.modes` — elemental modes: an autoencoder compressing the table to k numbers per element;
- :mod:`.acsf` — atom-centred symmetry functions with element channels (:class:`ACSFParams`);
- :mod:`.config` — :class:`BPConfig`, what defines a network, and its channel table;
- :mod:`.network` — :class:`BPNetwork` (shared atomic network, energy and forces) and
  :func:`load_bp_model`;
- :mod:`.alchemy` — interpolation between two element assignments of one geometry;
- :mod:`.data` — geometries with energies (and forces) from a store, ASE's extended XYZ or an
  XYZ file;
- :mod:`.splits` — splits by molecule, element exclusion and few-shot transfer;
- :mod:`.dataset` — per-atom features computed once, the torch dataset and collate;
- :mod:`.references` — per-element reference energies (fitted, or free atoms);
- :mod:`.forces` — training on forces: feature Jacobians computed once, the force loss;
- :mod:`.training` — :func:`train_bp` (on the loop of :mod:`hessflow.ml.core.training`);
- :mod:`.evaluate` — predicted energies and forces, metrics (energies kcal/mol, forces
  Hartree/Bohr and eV/Angstrom), :func:`evaluate_bp`;
- :mod:`.calculator` — :class:`~hessflow.ml.bp.calculator.BPCalculator`, a trained network as
  an ASE calculator (imported on its own: ``from hessflow.ml.bp.calculator import
  BPCalculator``);
- :mod:`.spec` — the spec ``hessflow bp train`` hands to every rank
  (``python -m hessflow.ml.bp SPEC.json``).

The training data can be made with :func:`hessflow.workflows.bp_data.generate_xtb_store`
(GFN2-xTB single points on displaced conformers); free-atom energies come from
:mod:`hessflow.qm.atom_references`.
"""

from .acsf import ACSF, ACSFParams, cutoff, onehot_table
from .alchemy import alchemical_energies, interpolate_features
from .config import BPConfig, channel_table, config_from_mapping
from .data import load_energies
from .dataset import FeatureDataset, compute_features, pad_collate
from .evaluate import energy_metrics, evaluate_bp, force_metrics, predict_energies, predict_forces
from .forces import feature_jacobians
from .modes import ElementalModes, fit_modes, interpolate_modes
from .network import BPNetwork, load_bp_model
from .references import fit_reference
from .spec import run_spec
from .splits import molecule_splits
from .training import prepare, train_bp

__all__ = ["ACSF", "ACSFParams", "cutoff", "onehot_table", "alchemical_energies",
           "interpolate_features", "BPConfig", "channel_table", "config_from_mapping",
           "load_energies", "FeatureDataset", "compute_features", "pad_collate", "energy_metrics",
           "evaluate_bp", "force_metrics", "predict_energies", "predict_forces", "feature_jacobians", "ElementalModes", "fit_modes", "interpolate_modes",
           "BPNetwork", "load_bp_model", "fit_reference", "run_spec", "molecule_splits",
           "prepare", "train_bp"]
