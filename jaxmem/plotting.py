"""Shared figure helpers: matplotlib without a display, the two colours of SMDD's
figures, and saving a figure to a PNG."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FEATURE_COLOR, DATA_COLOR = "tab:blue", "tab:red"


def save(fig, path) -> None:
    """Write ``fig`` to ``path`` (120 dpi, tight) and close it."""
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
