"""The curated environments: names starting ``mlmagic-`` are reserved for these.

Each is mlmagic YAML text, parsed like a cell, so a curated environment is versioned and
cached like any other.
"""

from __future__ import annotations

__all__ = ["CURATED", "RESERVED_PREFIX"]

RESERVED_PREFIX = "mlmagic-"

CURATED: dict[str, str] = {
    "mlmagic-minimal": "pip: []\n",
    "mlmagic-sklearn": (
        "pip:\n  - scikit-learn>=1.5\n  - pandas>=2\n  - numpy>=1.26\n  - joblib>=1.4\n"
    ),
    "mlmagic-pytorch": ("pip:\n  - torch>=2.4\n  - numpy>=1.26\n  - pandas>=2\n"),
}
