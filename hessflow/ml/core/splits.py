"""Train / validation / test splits by index: one seeded random split, or k folds."""

from __future__ import annotations

import numpy as np

__all__ = ["random_split", "kfold_splits"]


def random_split(n: int, val: float = 0.1, test: float = 0.1, seed: int = 0) -> dict:
    """``{"train", "val", "test"}`` index lists over ``n`` samples: a seeded permutation, the
    first ``round(test * n)`` to test, the next ``round(val * n)`` to validation (fractions)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(test * n)), int(round(val * n))
    return {"test": perm[:n_test].tolist(), "val": perm[n_test:n_test + n_val].tolist(),
            "train": perm[n_test + n_val:].tolist()}


def kfold_splits(n: int, k: int = 10, val: float = 0.1, seed: int = 0) -> list[dict]:
    """k folds: fold i tests on the i-th part; a validation part (fraction ``val`` of the rest,
    at least one sample) is drawn from the rest."""
    if not 2 <= k <= n:
        raise ValueError(f"k: {k} folds need 2 <= k <= {n} samples")
    perm = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(perm, k)
    out = []
    for i in range(k):
        rest = np.concatenate([p for j, p in enumerate(parts) if j != i])
        n_val = max(1, int(round(val * len(rest))))
        out.append({"test": parts[i].tolist(), "val": rest[:n_val].tolist(),
                    "train": rest[n_val:].tolist()})
    return out
