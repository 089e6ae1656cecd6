"""Command-line options shared by the training commands (``train``, ``vae train``, ``bp train``)."""

from __future__ import annotations


def add_training_options(p, *, epochs: int, batch_size: int, patience: int, lr: float = 1e-3,
                         limit_help: str = "only the first N molecules") -> None:
    """Add the options every training command takes, with that command's defaults."""
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size,
                   help=f"global batch, split over the ranks (default {batch_size})")
    p.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate (default {lr:g})")
    p.add_argument("--patience", type=int, default=patience,
                   help=f"epochs without a better validation loss before stopping "
                        f"(default {patience})")
    p.add_argument("--seed", type=int, default=0, help="split and initialisation seed")
    p.add_argument("--limit", type=int, help=limit_help)
    p.add_argument("--ranks", type=int, default=1,
                   help="data-parallel ranks (mpiexec, or srun in Slurm)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda")


def add_group(sub, name: str, help: str):
    """A command with sub-commands of its own (``hessflow NAME train | ...``): their parsers."""
    return sub.add_parser(name, help=help).add_subparsers(dest=f"{name}_command", required=True)
