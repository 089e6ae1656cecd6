"""SMILES variational autoencoder with a property predictor on the latent space (inverse design).

One concept per module:

- :mod:`.tokens` — the SMILES tokeniser and vocabulary;
- :mod:`.config` — :class:`VAEConfig` (sizes, training, evaluation) and the KL-weight schedule;
- :mod:`.model` — :class:`SmilesVAE`, GRU encoder/decoder with a property predictor on μ;
- :mod:`.loss` — the objective (reconstruction + annealed KL + property MSE);
- :mod:`.data` — molecules from a QM9 CSV, a store or a ``.smi`` file; the token dataset;
- :mod:`.training` — :func:`train_vae`, data-parallel, seeded, resumable;
- :mod:`.metrics` — RDKit validity/uniqueness/novelty and the metrics of a run;
- :mod:`.trained` — a trained run (:class:`VAERun`, :func:`load_vae_run`);
- :mod:`.design` — prior samples, molecules near a target property, interpolation, latent PCA
  data (the figure: :mod:`hessflow.analysis.latent`);
- :mod:`.spec` — the spec ``hessflow vae train`` hands to every rank
  (``python -m hessflow.ml.vae SPEC.json``).
"""

from .config import VAEConfig, config_from_mapping, kl_weight_at
from .data import SmilesDataset, collate, load_molecules
from .design import (LatentPCA, interpolate, latent_pca, parse_target, sample_near_target,
                     sample_prior)
from .loss import vae_loss
from .metrics import canonical, evaluate, sample_metrics, validity
from .model import SmilesVAE
from .spec import config_from_spec, run_spec
from .tokens import BOS_ID, EOS_ID, PAD_ID, Vocab, tokenize
from .trained import VAERun, load_vae_run
from .training import train_vae

__all__ = ["VAEConfig", "config_from_mapping", "kl_weight_at", "SmilesDataset", "collate",
           "load_molecules", "LatentPCA", "interpolate", "latent_pca", "parse_target",
           "sample_near_target", "sample_prior", "vae_loss", "canonical", "evaluate",
           "sample_metrics", "validity", "SmilesVAE", "config_from_spec", "run_spec", "BOS_ID",
           "EOS_ID", "PAD_ID", "Vocab", "tokenize", "VAERun", "load_vae_run", "train_vae"]
