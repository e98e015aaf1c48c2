"""The supervised baseline: arch2vec's GIN encoder trained to regress the search metric.

This is the paper's "supervised" representation: the same encoder (GIN layers, per-node
projection to the latent dimension, mean over nodes) but learned from the accuracies of the
architectures evaluated so far, with a linear head ``ŷ = w·z + b`` and squared error on
standardised targets. Calling :meth:`SupervisedGIN.fit` again continues from the current
weights (a warm start), which is how a search refits it after each round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from encoders.arch2vec import GINLayer
from encoders.base import Encoder


@dataclass(frozen=True)
class SupervisedConfig:
    hidden_dim: int = 128
    latent_dim: int = 16
    num_layers: int = 4
    epochs: int = 30          # passes over the labelled cells per fit() call
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    #: messages along ``A`` as given only (node i sums the states of j with A[i, j] = 1,
    #: its successors), as the authors' supervised DNGO network; False: ``A + Aᵀ``
    directed: bool = False
    #: the embedding is ``tanh`` of the mean (the authors' supervised basis functions)
    tanh_basis: bool = False
    #: fit standardised targets (``False``: the targets as given, the authors' raw fractions)
    standardize: bool = True
    #: drop each epoch's incomplete last minibatch (pybnn's loop; all cells when they
    #: fill no minibatch); ``False``: keep it unless it holds a single cell
    drop_last: bool = False


class SupervisedGINModel(nn.Module):
    """``z = mean_n(GIN(Ã, X) W)`` and ``ŷ = z·w + b``; shapes ``[B,N,N], [B,N,K] -> [B]``."""

    def __init__(self, num_ops: int, cfg: SupervisedConfig):
        super().__init__()
        self.cfg = cfg
        dims = [num_ops] + [cfg.hidden_dim] * cfg.num_layers
        self.layers = nn.ModuleList(GINLayer(i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.project = nn.Linear(cfg.hidden_dim, cfg.latent_dim)
        self.head = nn.Linear(cfg.latent_dim, 1)

    def embed(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        messages = adj if self.cfg.directed else adj + adj.transpose(1, 2)
        h = ops
        for layer in self.layers:
            h = layer(h, messages)
        z = self.project(h).mean(dim=1)
        return torch.tanh(z) if self.cfg.tanh_basis else z

    def forward(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(adj, ops)).squeeze(-1)


class SupervisedGIN(Encoder):
    """The GIN encoder learned from labels (``fit(adj, ops, y)``); ``encode`` gives ``z``.

    Example:
        >>> enc = SupervisedGIN(num_ops=7).fit(adj, ops, y)   # doctest: +SKIP
        >>> enc.encode(adj, ops).shape, enc.predict(adj, ops).shape   # [B, 16], [B]
    """

    name = "supervised"

    def __init__(self, num_ops: int, config: SupervisedConfig | None = None,
                 device: str | torch.device = "cpu"):
        self.config = config or SupervisedConfig()
        self.device = torch.device(device)
        self.dim = self.config.latent_dim
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.model = SupervisedGINModel(num_ops, self.config)
        with torch.no_grad():
            for module in self.model.modules():
                if isinstance(module, nn.Linear):
                    bound = 1 / math.sqrt(module.in_features)
                    module.weight.uniform_(-bound, bound, generator=self.generator)
                    module.bias.uniform_(-bound, bound, generator=self.generator)
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr,
                                          weight_decay=self.config.weight_decay)
        self.y_mean, self.y_std = 0.0, 1.0

    def fit(self, adj: torch.Tensor, ops: torch.Tensor, y: torch.Tensor | None = None
            ) -> "SupervisedGIN":
        if y is None:
            raise ValueError("SupervisedGIN.fit needs targets y (the search metric of each cell)")
        adj = adj.to(self.device, torch.float32)
        ops = ops.to(self.device, torch.float32)
        y = torch.as_tensor(y, dtype=torch.float32)
        if len(y) != len(adj):
            raise ValueError(f"got {len(adj)} cells but {len(y)} targets")
        # BatchNorm needs two samples per batch in training mode
        if len(y) < 2:
            raise ValueError("SupervisedGIN.fit needs at least 2 labelled cells")
        cfg = self.config
        self.y_mean, self.y_std = (float(y.mean()), float(y.std()) or 1.0) if cfg.standardize \
            else (0.0, 1.0)
        target = ((y - self.y_mean) / self.y_std).to(self.device)
        self.model.train()
        n = len(y)
        size = min(cfg.batch_size, n)
        for _ in range(cfg.epochs):
            order = torch.randperm(n, generator=self.generator).to(self.device)
            for batch in order.split(size):
                if len(batch) < 2 or (cfg.drop_last and len(batch) < size):
                    continue
                loss = F.mse_loss(self.model(adj[batch], ops[batch]), target[batch])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
        self.model.eval()
        return self

    @torch.no_grad()
    def encode(self, adj: torch.Tensor, ops: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        self.model.eval()
        return torch.cat([self.model.embed(a.to(self.device, torch.float32),
                                           x.to(self.device, torch.float32)).cpu()
                          for a, x in zip(adj.split(batch_size), ops.split(batch_size))])

    @torch.no_grad()
    def predict(self, adj: torch.Tensor, ops: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        """Predicted search metric ``[B]`` in the targets' own units."""
        self.model.eval()
        out = torch.cat([self.model(a.to(self.device, torch.float32),
                                    x.to(self.device, torch.float32)).cpu()
                         for a, x in zip(adj.split(batch_size), ops.split(batch_size))])
        return out * self.y_std + self.y_mean
