"""``jepa``: masked self-distillation on cell graphs: predict, in latent space, the
representations a slowly moving (EMA) target encoder gives the *whole* cell, from a view
with some ops hidden. No decoder.

The name is historical; what it is sits closer to data2vec (Baevski et al., 2022: an EMA
teacher of the unmasked input, regressed from a masked student) and BYOL (Grill et al.,
2020: an online predictor against an EMA target of another view, here at graph level)
than to I-JEPA (Assran et al., 2023), whose targets are separate blocks of the input
encoded apart from the context and predicted from it with positional queries: here the
target always sees the whole cell, and the node-level predictor reads the context's
own node states.

Two encoders of one architecture (backbone ``gin`` or ``mpnn``, ``readout``, linear map to
``latent_dim``): the *context* encoder ``f_θ`` (trained by gradient) and the *target*
encoder ``f_ξ`` (not trained; after every step ``ξ ← τ ξ + (1 - τ) θ``, ``τ = ema``).
For a batch of cells:

* the context view hides the ops of a random set ``M`` of layer nodes (each with
  probability ``mask_p``, at least one per cell; ``encoders.augment``), keeping nodes and
  edges; the target sees the whole cell;
* node level: a predictor ``p_n`` maps the context's node states to the target's at the
  hidden nodes, ``L_n = mean_{v ∈ M} (2 - 2 cos(p_n(h^θ_v), sg(h^ξ_v)))``;
* graph level: a predictor ``p_g`` maps the context's graph vector to the target's,
  ``L_g = mean_b (2 - 2 cos(p_g(y^θ_b), sg(y^ξ_b)))``;
* ``L = L_n + L_g`` (``sg``: stop-gradient). The predictors and the moving target are
  what keep the trivial constant solution from being a minimum reached in practice.

The embedding of a cell is the target encoder's ``y`` of the whole cell.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from encoders.augment import mask, with_mask_channel
from encoders.base import EncoderConfig, LearnedEncoder, with_positions
from encoders.layers import Readout, backbone, cosine_loss


@dataclass(frozen=True)
class JEPAConfig(EncoderConfig):
    backbone: str = "gin"
    num_layers: int = 4
    readout: str = "mean"
    mask_p: float = 0.3
    ema: float = 0.99               # τ of the target's moving average
    node_positions: int = 0         # >0: one-hot node position appended to every view


class JEPAEncoder(nn.Module):
    """backbone -> (node states, readout -> linear graph vector)."""

    def __init__(self, num_ops: int, cfg: JEPAConfig):
        super().__init__()
        self.positions = cfg.node_positions
        self.backbone = backbone(cfg.backbone, num_ops + 1 + cfg.node_positions,
                                 cfg.hidden_dim, cfg.num_layers)
        self.readout = Readout(cfg.readout, cfg.hidden_dim)
        self.embed = nn.Linear(self.readout.out_dim, cfg.latent_dim)

    def forward(self, adj, view, real):
        h = self.backbone(with_positions(view, self.positions), adj)
        return h, self.embed(self.readout(h, real))


def _mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                         nn.Linear(hidden, dim))


class JEPANet(nn.Module):
    def __init__(self, num_ops: int, cfg: JEPAConfig):
        super().__init__()
        self.context = JEPAEncoder(num_ops, cfg)
        self.node_predictor = _mlp(cfg.hidden_dim, cfg.hidden_dim)
        self.graph_predictor = _mlp(cfg.latent_dim, cfg.hidden_dim)
        self.target = copy.deepcopy(self.context)
        self.target.requires_grad_(False)


class JEPA(LearnedEncoder):
    """See the module docstring.

    Example:
        >>> enc = JEPA(num_ops=7, config=JEPAConfig(epochs=1), frozen_ops=(0, 6))
        >>> enc.fit(adj, ops)                     # doctest: +SKIP
        >>> z = enc.encode(adj, ops)              # [B, 16]
    """

    name = "jepa"
    config_class = JEPAConfig
    network_class = JEPANet

    def init_parameters(self) -> None:
        super().init_parameters()
        self.model.target.load_state_dict(self.model.context.state_dict())   # ξ = θ at start

    def optimizer(self) -> torch.optim.Optimizer:
        net = self.model
        params = [p for m in (net.context, net.node_predictor, net.graph_predictor)
                  for p in m.parameters()]
        return torch.optim.Adam(params, lr=self.config.lr)

    def step_loss(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        net = self.model
        real = ops.sum(-1) > 0
        view, hidden = mask(ops, self.frozen_ops, self.config.mask_p, self.generator,
                            at_least_one=True)
        h_c, y_c = net.context(adj, view, real)
        with torch.no_grad():
            net.target.eval()
            h_t, y_t = net.target(adj, with_mask_channel(ops), real)
        loss = cosine_loss(net.graph_predictor(y_c), y_t)
        if hidden.any():
            loss = loss + cosine_loss(net.node_predictor(h_c[hidden]), h_t[hidden])
        return loss

    @torch.no_grad()
    def after_step(self) -> None:
        tau = self.config.ema
        target, context = self.model.target.state_dict(), self.model.context.state_dict()
        for k, v in target.items():
            if v.dtype.is_floating_point:
                v.mul_(tau).add_(context[k], alpha=1 - tau)
            else:
                v.copy_(context[k])

    def encode(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        return self.map_batches(adj, ops, lambda a, x: self.model.target(
            a, with_mask_channel(x), x.sum(-1) > 0)[1])
