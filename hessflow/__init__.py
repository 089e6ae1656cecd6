"""hessflow: molecules -> quantum-chemistry dataset -> interpretable ML models.

Stages (data flows one way): ``qm`` -> ``store`` -> ``ml`` -> ``analysis``;
``workflows`` builds the Parsl graph and ``slurm`` holds cluster profiles.
"""

__version__ = "0.1.0"
