"""Splits by molecule: all geometries of one molecule (same SMILES, or same name when there is
none) are in one split, so "test" means molecules never seen in training.

``exclude_elements`` moves every molecule that contains one of them out of train/val into an
"excluded" split (``few_shot`` of them are put back into training): the transfer experiment.
"""

from __future__ import annotations

import numpy as np

from ...errors import HessflowError
from .config import elements_text


def molecule_splits(mols, val: float = 0.1, test: float = 0.1, seed: int = 0,
                    exclude_elements=(), few_shot: int = 0) -> dict:
    """Geometry indices of train/val/test (and "excluded") with whole molecules per split, plus
    the molecule ids of each split under "molecules"."""
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(mols):
        groups.setdefault(m["group"], []).append(i)
    names = list(groups)
    excl = {int(z) for z in exclude_elements}
    has = [bool(excl & {int(z) for z in mols[groups[g][0]]["numbers"]}) for g in names]
    rng = np.random.default_rng(seed)
    pool = [g for g, h in zip(names, has) if not h]
    ex = [g for g, h in zip(names, has) if h]
    pool = [pool[i] for i in rng.permutation(len(pool))]
    ex = [ex[i] for i in rng.permutation(len(ex))]
    if few_shot and not excl:
        raise HessflowError("--few-shot: needs --exclude-element (which element to hold back)")
    if few_shot > len(ex):
        raise HessflowError(f"--few-shot: {few_shot} molecules asked for, only {len(ex)} contain "
                            f"{elements_text(excl)}")
    n_test, n_val = int(round(test * len(pool))), int(round(val * len(pool)))
    mol_split = {"test": pool[:n_test], "val": pool[n_test:n_test + n_val],
                 "train": pool[n_test + n_val:] + ex[:few_shot], "excluded": ex[few_shot:]}
    if not mol_split["train"]:
        raise HessflowError("split: no training molecules left (too few molecules for the "
                            "val/test fractions, or every molecule has an excluded element)")
    out = {k: sorted(i for g in v for i in groups[g]) for k, v in mol_split.items()}
    out["molecules"] = mol_split
    return out
