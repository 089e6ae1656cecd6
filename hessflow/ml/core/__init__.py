"""The ml core shared by the model families (property models, SMILES VAE, BP network).

- :mod:`.data` — the one molecule loader (hessflow store, QM9 CSV, QM9 extended XYZ), targets
  and their units;
- :mod:`.splits` — random and k-fold splits;
- :mod:`.training` — the one DDP training loop with hooks, its config, checkpoints;
- :mod:`.distributed` — ranks and the process group; :mod:`.launch` — starting N ranks;
- :mod:`.metrics` — regression metrics.
"""
