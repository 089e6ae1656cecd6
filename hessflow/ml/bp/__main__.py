"""``python -m hessflow.ml.bp SPEC.json``: train the Behler–Parrinello network on this rank
(see :mod:`.spec`)."""

import sys

from .spec import main

sys.exit(main())
