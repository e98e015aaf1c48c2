"""Graph layers shared by the learned encoders: message passing (GIN, MPNN), readouts.

Shapes follow ``encoders.base``: node states ``h [B, N, F]``, upper-triangular
adjacency ``adj [B, N, N]``; padding nodes have all-zero op rows (``real [B, N]`` false).

MPNN (Gilmer et al., "Neural Message Passing for Quantum Chemistry", 2017), with edge
types ``t`` (here: forward ``i -> j`` and backward, i.e. ``A`` and ``Aᵀ``):

* message ``m_v = Σ_t Σ_{w ∈ N_t(v)} M_t h_w``: the edge network's matrix for a discrete
  edge type is one learned matrix ``M_t`` per type, so ``m = Σ_t A_t (H M_tᵀ)``;
* update ``h_v' = GRU(m_v, h_v)``, the same GRU at every step (weights tied across the
  ``T`` steps, as in the paper);
* readout ``ŷ = R({h_v})``: ``mean``, ``sum``, or ``set2set`` (Vinyals et al., order-
  invariant attention with an LSTM over ``steps`` rounds, output ``2F``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MPNNLayers(nn.Module):
    """``steps`` rounds of edge-typed messages and a tied GRU update, from an input
    projection ``h⁽⁰⁾ = X W_in``. ``[B,N,K], [B,N,N] -> [B,N,H]``."""

    def __init__(self, in_dim: int, hidden_dim: int, steps: int, edge_types: int = 2):
        super().__init__()
        self.steps = steps
        self.embed = nn.Linear(in_dim, hidden_dim)
        self.edge = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim, bias=False)
                                  for _ in range(edge_types))
        self.gru = nn.GRUCell(hidden_dim, hidden_dim)

    @staticmethod
    def edge_sets(adj: torch.Tensor) -> list[torch.Tensor]:
        """``[Aᵀ, A]``: ``(Aᵀ H)_v`` sums ``h_w`` over predecessors ``w -> v`` (forward
        edges), ``(A H)_v`` over successors ``v -> w`` (backward edges)."""
        return [adj.transpose(1, 2), adj]

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h = self.embed(x)
        edges = self.edge_sets(adj)[:len(self.edge)]
        for _ in range(self.steps):
            m = sum(a @ lin(h) for a, lin in zip(edges, self.edge))
            h = self.gru(m.reshape(b * n, -1), h.reshape(b * n, -1)).reshape(b, n, -1)
        return h


class GINLayers(nn.Module):
    """arch2vec's GIN stack on the bidirectional graph (``encoders.arch2vec.GINLayer``)."""

    def __init__(self, in_dim: int, hidden_dim: int, layers: int):
        super().__init__()
        from encoders.arch2vec import GINLayer

        dims = [in_dim] + [hidden_dim] * layers
        self.layers = nn.ModuleList(GINLayer(i, o) for i, o in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        both = adj + adj.transpose(1, 2)
        h = x
        for layer in self.layers:
            h = layer(h, both)
        return h


def backbone(kind: str, in_dim: int, hidden_dim: int, layers: int) -> nn.Module:
    """``gin`` or ``mpnn`` node encoder."""
    if kind == "gin":
        return GINLayers(in_dim, hidden_dim, layers)
    if kind == "mpnn":
        return MPNNLayers(in_dim, hidden_dim, layers)
    raise ValueError(f"backbone must be 'gin' or 'mpnn', got {kind!r}")


class Set2Set(nn.Module):
    """``q_t = LSTM(q*_{t-1})``, ``a = softmax_v(h_v · q_t)`` over real nodes,
    ``r_t = Σ a_v h_v``, ``q*_t = [q_t, r_t]``; returns ``q*_T`` ``[B, 2F]``."""

    def __init__(self, dim: int, steps: int = 3):
        super().__init__()
        self.steps = steps
        self.lstm = nn.LSTMCell(2 * dim, dim)

    def forward(self, h: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        b, _, f = h.shape
        q_star = h.new_zeros(b, 2 * f)
        state = (h.new_zeros(b, f), h.new_zeros(b, f))
        for _ in range(self.steps):
            q, c = self.lstm(q_star, state)
            state = (q, c)
            e = (h * q[:, None, :]).sum(-1).masked_fill(~real, float("-inf"))
            a = torch.softmax(e, dim=1)
            r = (a[..., None] * h).sum(1)
            q_star = torch.cat([q, r], dim=-1)
        return q_star


class Readout(nn.Module):
    """Graph vector from node states: ``mean`` or ``sum`` over real nodes, or ``set2set``."""

    def __init__(self, kind: str, dim: int):
        super().__init__()
        if kind not in ("mean", "sum", "set2set"):
            raise ValueError(f"readout must be 'mean', 'sum' or 'set2set', got {kind!r}")
        self.kind = kind
        self.out_dim = 2 * dim if kind == "set2set" else dim
        self.set2set = Set2Set(dim) if kind == "set2set" else None

    def forward(self, h: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        if self.set2set is not None:
            return self.set2set(h, real)
        w = real.to(h.dtype)[..., None]
        total = (h * w).sum(1)
        return total if self.kind == "sum" else total / w.sum(1).clamp_min(1)


def projector(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear-BN-ReLU-Linear: the projection head of Barlow Twins."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                         nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim),
                         nn.ReLU(), nn.Linear(hidden_dim, out_dim))


def cosine_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos(pred, target)`` averaged over rows (BYOL's normalised squared error)."""
    return (2 - 2 * F.cosine_similarity(pred, target, dim=-1)).mean()
