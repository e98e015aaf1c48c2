"""Where latentnas keeps derived data (parsed benchmark tables, pretrained models)."""

from __future__ import annotations

import os


def cache_dir(*parts: str) -> str:
    """``$LATENTNAS_CACHE`` (default ``~/.cache/latentnas``) joined with ``parts``."""
    root = os.environ.get("LATENTNAS_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "latentnas"))
    return os.path.join(root, *parts)

