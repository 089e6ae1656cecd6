"""``python -m hessflow.ml.vae SPEC.json``: train the SMILES VAE on this rank (see :mod:`.spec`)."""

import sys

from .spec import main

sys.exit(main())
