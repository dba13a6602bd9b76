"""``python -m mlmagic.cli``: the ``mlmagic`` command without its script on PATH."""

import sys

from mlmagic.cli import main

sys.exit(main())
