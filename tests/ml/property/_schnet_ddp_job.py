"""SchNet on the xTB store through the one training loop, for tests/ml/property/test_schnet.py;
launched by mpiexec (2 ranks) or directly (1 rank). Each rank writes rank<r>.json with the digest
of its final weights and its loss history.

usage: python _schnet_ddp_job.py STORE RUN_DIR EPOCHS
"""

import json
import sys
from pathlib import Path

from hessflow.ml.core.distributed import rank_world
from hessflow.ml.core.regression import Regression
from hessflow.ml.core.training import TrainConfig, state_digest, train
from hessflow.ml.property import experiment

store, run_dir, epochs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
spec = experiment.TrainSpec.parse({"data": store, "out": str(run_dir), "model": "schnet",
                                   "target": "alpha", "schnet": {"hidden": 16, "filters": 16,
                                                                 "interactions": 2}})
built = experiment.build(spec)
holder = {}


def make():
    holder["model"] = built.model_fn()
    return holder["model"]


cfg = TrainConfig(epochs=epochs, batch_size=8, lr=3e-3, patience=1000, seed=2, device="cpu")
metrics = train(make, built.trainset, built.train_splits, cfg, run_dir,
                Regression(collate=built.collate, eval_dataset=built.evalset,
                           eval_splits=built.splits, finish=False))
rank, world, _ = rank_world()
(run_dir / f"rank{rank}.json").write_text(json.dumps({
    "digest": state_digest(holder["model"]), "world": world,
    "history": metrics["history"]}))
