"""A small DDP training job for tests/ml/core/test_train.py, launched by mpiexec (or directly, 1 rank).

usage: python _ddp_job.py RUN_DIR EPOCHS [--resume] [--garbage-test-labels]
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from hessflow.ml.core.distributed import rank_world
from hessflow.ml.core.splits import random_split
from hessflow.ml.core.training import TrainConfig, state_digest, train
from hessflow.ml.core.regression import ArrayDataset
from hessflow.ml.property.models import MLP

run_dir, epochs = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
x = rng.normal(size=(320, 8))
y = np.tanh(x @ rng.normal(size=8)) + 0.1 * x[:, 0] ** 2
splits = random_split(len(x), val=0.1, test=0.1, seed=1)  # 256 train: divisible by 2 ranks x 32
if "--garbage-test-labels" in sys.argv:
    y[splits["test"]] = 1e6
ds = ArrayDataset(x, y)
cfg = TrainConfig(epochs=epochs, batch_size=32, lr=3e-3, patience=1000, seed=3, device="cpu")
holder = {}


def make():
    holder["model"] = MLP(8, (16, 8), 1)
    return holder["model"]


metrics = train(make, ds, splits, cfg, run_dir, resume="--resume" in sys.argv)
rank, world, _ = rank_world()
(run_dir / f"rank{rank}.json").write_text(json.dumps({
    "digest": state_digest(holder["model"]), "world": world,
    "history": metrics["history"], "test_mae": metrics["test"]["mae"],
    "weights": [p.detach().numpy().ravel().tolist() for p in holder["model"].parameters()]}))
