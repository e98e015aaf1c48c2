"""The encoder interface shared by arch2vec and the baseline encodings.

Encoders are plain PyTorch: they take batched cell tensors and know nothing of spaces,
files or Ray. ``adj`` is ``[B, N, N]`` (0/1, upper-triangular: ``adj[b, i, j] = 1`` for an
edge ``i -> j``) and ``ops`` is one-hot ``[B, N, K]``; zero rows are padding nodes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Encoder(ABC):
    """Maps cells to vectors. Generative encoders can also decode vectors into cells.

    Example (a new encoding: the op histogram of a cell)::

        class OpCounts(Encoder):
            name = "op-counts"

            def fit(self, adj, ops, y=None):
                self.dim = ops.shape[-1]
                return self

            def encode(self, adj, ops):
                return ops.sum(dim=1)
    """

    name: str = "encoder"
    #: length of the vectors :meth:`encode` returns (known after :meth:`fit`)
    dim: int = 0
    #: whether :meth:`decode` exists
    generative: bool = False

    @abstractmethod
    def fit(self, adj: torch.Tensor, ops: torch.Tensor, y: torch.Tensor | None = None) -> "Encoder":
        """Learns from cells (and targets ``y [B]`` for supervised encoders); returns self."""

    @abstractmethod
    def encode(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        """``[B, dim]`` float32 vectors for a batch of cells."""

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities ``(ops [B, N, K], adj [B, N, N])`` for latent points (generative only)."""
        raise NotImplementedError(f"encoder {self.name!r} is not generative")
