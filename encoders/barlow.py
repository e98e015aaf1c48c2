"""``barlow``: a graph encoder trained with the Barlow Twins objective (Zbontar et al.,
"Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021).

Two views ``x¹, x²`` of every cell in a batch are drawn independently (``encoders.augment``:
each masks every layer node's op with probability ``mask_p`` and, with probability
``substitute_p``, swaps one layer op for another, i.e. moves to a one-edit neighbour).
Each view goes through the same network:

* node states ``H = f(Ã, X)`` from a ``backbone``: arch2vec's GIN stack (``gin``) or the
  MPNN of ``encoders.layers`` (``mpnn``), ``num_layers`` rounds;
* the representation ``y = R(H) W_e``: a ``readout`` (``mean``, ``sum`` or ``set2set``)
  then a linear map to ``latent_dim`` (16, arch2vec's size, so searchers see vectors of
  one size whatever the encoder);
* the projection ``z = g(y)`` (Linear-BN-ReLU twice, then Linear to ``projector_dim``).

With ``ẑ`` the batch-standardised projections (zero mean, unit variance per dimension,
over the ``B`` cells) the cross-correlation is ``C_ij = Σ_b ẑ¹_bi ẑ²_bj / B`` and

    L = Σ_i (1 - C_ii)² + λ Σ_i Σ_{j≠i} C_ij²

(invariance to the augmentations on the diagonal, decorrelated dimensions off it;
``λ = offdiag_weight``). The embedding of a cell is ``y`` of the unaugmented cell. No
decoder, so ``decode`` is not available.

A named variant, not plain Barlow Twins: with the default ``substitute_p = 0.5`` half the
positive pairs are a cell and a one-edit neighbour, another architecture, so the encoder
is taught that neighbours should embed alike (a smoothness prior for search), not only
invariance to views of one architecture. ``substitute_p=0`` keeps every view the same
architecture (ops masked, never changed): Barlow Twins proper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from encoders.augment import mask, substitute, with_mask_channel
from encoders.base import EncoderConfig, LearnedEncoder, with_positions
from encoders.layers import Readout, backbone, projector


@dataclass(frozen=True)
class BarlowConfig(EncoderConfig):
    backbone: str = "gin"
    num_layers: int = 4
    readout: str = "mean"
    projector_dim: int = 128
    offdiag_weight: float = 5e-3    # λ; the Barlow Twins paper's value
    mask_p: float = 0.15
    substitute_p: float = 0.5
    batch_size: int = 128           # the cross-correlation is estimated over a batch
    node_positions: int = 0         # >0: one-hot node position appended to every view


class BarlowNet(nn.Module):
    """backbone -> readout -> linear (representation) -> projector."""

    def __init__(self, num_ops: int, cfg: BarlowConfig):
        super().__init__()
        self.positions = cfg.node_positions
        self.backbone = backbone(cfg.backbone, num_ops + 1 + cfg.node_positions,
                                 cfg.hidden_dim, cfg.num_layers)
        self.readout = Readout(cfg.readout, cfg.hidden_dim)
        self.embed = nn.Linear(self.readout.out_dim, cfg.latent_dim)
        self.projector = projector(cfg.latent_dim, 4 * cfg.latent_dim, cfg.projector_dim)

    def represent(self, adj: torch.Tensor, view: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        h = self.backbone(with_positions(view, self.positions), adj)
        return self.embed(self.readout(h, real))


def barlow_loss(z1: torch.Tensor, z2: torch.Tensor, offdiag_weight: float) -> torch.Tensor:
    """The Barlow Twins loss of two ``[B, D]`` projections (module docstring)."""
    b = z1.shape[0]
    z1 = (z1 - z1.mean(0)) / (z1.std(0, unbiased=False) + 1e-6)   # as a BatchNorm would
    z2 = (z2 - z2.mean(0)) / (z2.std(0, unbiased=False) + 1e-6)
    c = z1.T @ z2 / b
    diag = torch.diagonal(c)
    return (1 - diag).pow(2).sum() + offdiag_weight * (c.pow(2).sum() - diag.pow(2).sum())


class BarlowTwins(LearnedEncoder):
    """See the module docstring.

    Example:
        >>> enc = BarlowTwins(num_ops=7, config=BarlowConfig(epochs=1), frozen_ops=(0, 6))
        >>> enc.fit(adj, ops)                     # doctest: +SKIP
        >>> z = enc.encode(adj, ops)              # [B, 16]
    """

    name = "barlow"
    config_class = BarlowConfig
    network_class = BarlowNet

    def _view(self, ops: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        swapped = substitute(ops, self.frozen_ops, cfg.substitute_p, self.generator)
        return mask(swapped, self.frozen_ops, cfg.mask_p, self.generator)[0]

    def step_loss(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        real = ops.sum(-1) > 0
        net = self.model
        z1 = net.projector(net.represent(adj, self._view(ops), real))
        z2 = net.projector(net.represent(adj, self._view(ops), real))
        return barlow_loss(z1, z2, self.config.offdiag_weight)

    def encode(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        return self.map_batches(adj, ops, lambda a, x: self.model.represent(
            a, with_mask_channel(x), x.sum(-1) > 0))
