"""``mpnn``: arch2vec's variational autoencoder with a message-passing encoder (Gilmer et
al., "Neural Message Passing for Quantum Chemistry", ICML 2017) in place of GIN.

Everything but the encoder is arch2vec's (``encoders.arch2vec``): per-node Gaussian heads,
the inner-product decoder with dropout, the reconstruction + KL loss, the training loop and
its settings, so a comparison of the two isolates the encoder. With ``X`` the one-hot ops
``[B, N, K]`` and ``A`` the upper-triangular adjacency:

* ``h⁽⁰⁾ = X W_in``;
* ``T = num_layers`` rounds (4, arch2vec's hop count) of
  ``m_v = Σ_t Σ_{w ∈ N_t(v)} M_t h_w`` over the edge types ``t`` = forward (``w -> v``)
  and backward (``v -> w``), one learned matrix ``M_t`` per type (the edge network of a
  discrete edge label), then ``h_v ← GRU(m_v, h_v)`` with one GRU shared by all rounds.
  Unlike GIN's ``Ã = A + Aᵀ``, the direction of every edge reaches the node states;
* ``μ = h W_μ``, ``log σ = h W_σ``; ``Z = μ + σ ⊙ ε`` in training;
* graph embedding: ``readout`` of ``μ``: ``mean`` over the nodes (arch2vec's) or
  ``sum`` over the real nodes. A ``set2set`` readout is not offered here: the autoencoder's loss is on the
  per-node latents, so a parametric readout would never receive a gradient and would
  stay at its random initialisation (``barlow`` and ``jepa`` train theirs).

The cells of the shipped spaces carry their ops on nodes and have no edge labels besides
direction, so direction is the edge type.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from encoders.arch2vec import Arch2Vec, Arch2VecConfig, Arch2VecModel
from encoders.base import seeded_init
from encoders.layers import MPNNLayers


@dataclass(frozen=True)
class MPNNConfig(Arch2VecConfig):
    """arch2vec's settings (same defaults) plus the readout of the graph embedding."""

    readout: str = "mean"          # mean (arch2vec's) or sum


class MPNNModel(Arch2VecModel):
    """The MPNN encoder with arch2vec's heads and decoder (``decode`` is inherited)."""

    def __init__(self, num_ops: int, cfg: MPNNConfig):
        torch.nn.Module.__init__(self)
        if cfg.readout not in ("mean", "sum"):
            raise ValueError(f"mpnn readout must be 'mean' or 'sum', got {cfg.readout!r} "
                             "(set2set gets no gradient from the autoencoder's loss)")
        if cfg.ops_activation not in ("softmax", "sigmoid"):
            raise ValueError(f"ops_activation must be 'softmax' or 'sigmoid', "
                             f"got {cfg.ops_activation!r}")
        self.cfg = cfg
        self.mpnn = MPNNLayers(num_ops + cfg.node_positions, cfg.hidden_dim, cfg.num_layers)
        self.mu_head = torch.nn.Linear(cfg.hidden_dim, cfg.latent_dim)
        self.log_sigma_head = torch.nn.Linear(cfg.hidden_dim, cfg.latent_dim)
        self.ops_head = torch.nn.Linear(cfg.latent_dim, num_ops)

    def encode(self, adj: torch.Tensor, ops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.mpnn(self.inputs(ops), adj)
        return self.mu_head(h), self.log_sigma_head(h)

    def reset_parameters(self, generator: torch.Generator) -> None:
        seeded_init(self, generator)


class MPNN(Arch2Vec):
    """The MPNN variational autoencoder (see the module docstring).

    Example:
        >>> enc = MPNN(num_ops=7, config=MPNNConfig(epochs=1))
        >>> enc.fit(adj, ops)                     # doctest: +SKIP
        >>> z = enc.encode(adj, ops)              # [B, 16] graph embeddings
    """

    name = "mpnn"
    config_class = MPNNConfig
    model_class = MPNNModel

    def encode(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        mu = self.node_latents(adj, ops)
        if self.config.readout == "mean":
            return mu.mean(dim=1)
        real = (ops.sum(-1) > 0).to(mu.device, mu.dtype)[..., None]
        return (mu * real).sum(dim=1)
