"""Executor profiles and Slurm: :mod:`.profile` (the typed ``executor:`` settings),
:mod:`.shell` (worker and driver shell set-up), :mod:`.executors` (a Parsl ``Config`` per
kind, the MPI launch prefix), :mod:`.submit` (the driver's sbatch script) and ``cluster.sh``
(a single-node test cluster). See docs/slurm.md."""
