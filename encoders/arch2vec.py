"""arch2vec: a variational graph isomorphism autoencoder for cell graphs.

Yan et al., "Does Unsupervised Architecture Representation Learning Help Neural
Architecture Search?", NeurIPS 2020. With ``X`` the one-hot ops ``[B, N, K]`` and ``A``
the upper-triangular adjacency ``[B, N, N]``:

* message passing runs on the bidirectional graph ``Ã = A + Aᵀ``;
* GIN layers ``H⁽ˡ⁾ = ReLU(BN(MLP⁽ˡ⁾((1 + ε⁽ˡ⁾) · H⁽ˡ⁻¹⁾ + Ã H⁽ˡ⁻¹⁾)))``, ``H⁽⁰⁾ = X``, with a
  learnable ``ε⁽ˡ⁾`` and 2-layer MLPs (Linear-BN-ReLU-Linear), hidden width 128. The
  authors' "5 hops" counts the input as hop 1, so it means **4** GIN layers;
* per-node heads ``μ = H W_μ``, ``log σ = H W_σ`` to the latent dimension (16);
* ``Z = μ + σ ⊙ ε`` in training, ``Z = μ`` at inference; the graph embedding is the mean
  of ``μ`` over nodes;
* decoder on ``Z' = Dropout₀.₃(Z)``: ``X̂ = softmax(Z' W_o)``, ``Â = sigmoid(Z' Z'ᵀ)``,
  upper triangle kept. The paper writes softmax for the ops; the authors' code applies
  a sigmoid (``ops_activation="sigmoid"``, what the reference settings use). Two nodes
  that 1-WL cannot tell apart (e.g. two automorphic layers) get the same ``μ``, hence
  ``Â_ij = sigmoid(|μ|²) > ½``: an edge, whether or not there is one
  (:func:`inner_product_ambiguous` finds such graphs: 10.6 % of NAS-Bench-Graph and
  6.8 % of NAS-Bench-101 cells, none of NB201). The option ``node_positions`` (not in
  the paper) appends a one-hot node position to ``X``: it breaks those ties, at the price
  that the embedding depends on the node order, so cells must be encoded in one
  canonical order (the finite spaces' stored cells are);
* loss ``BCE(X̂, X) + BCE(triu Â, A) + KL``, with the reference's per-node KL
  ``-1/(2·b·N) · mean_{b,n} Σ_d (1 + 2 log σ - μ² - σ²)``; ``b`` is fixed to the reference's
  batch size (32) so the KL weight does not change when the batch size does (the
  reference code divides by each batch's own size: ``kl_batch=0``).

The authors' pretraining script switches the model to evaluation mode after its first
epoch (to sample the prior) and never back. From the second epoch on it therefore trains
a deterministic autoencoder: ``Z = μ`` without noise, no decoder dropout, and BatchNorm
normalising with the running statistics frozen at the end of epoch 1. The option
``train_mode_epochs`` reproduces this (``1``, what the reference settings use; ``0``, the
default, trains every epoch as the paper describes). It changes the outcome, not a
detail: on NB201 the prior's decodings go from 99 % valid / 66 % unique (every epoch in
training mode) to 72-82 % valid / 97-99 % unique, the authors' figures. The script also
draws one order of the training cells and keeps it every epoch (``reshuffle=False``), and
divides the KL term by each batch's own size (``kl_batch=0``): in evaluation mode the KL
is the only pull on ``μ`` towards 0, and its larger weight on the last batch of 14 cells
each epoch makes the authors' latent space about 5 % narrower (measured: their script
with the divisor fixed at 32 ends at our scale).

Every random draw (initialisation, shuffling, reparameterisation noise, dropout) comes
from a seeded ``torch.Generator``, so the same seed gives the same model on one device.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from encoders.base import EpochReport, LearnedEncoder, with_positions

REFERENCE_BATCH = 32


@dataclass(frozen=True)
class Arch2VecConfig:
    """Model and training settings. Defaults are the authors' unless noted."""

    hidden_dim: int = 128
    latent_dim: int = 16
    num_layers: int = 4            # "5 hops" in the reference = input + 4 GIN layers
    dropout: float = 0.3
    epochs: int = 10               # reference: 10 (NB201), 8 (NB101)
    batch_size: int = 32           # reference: 32
    lr: float = 1e-3
    grad_clip: float = 5.0
    #: ``b`` of the KL weight ``1/(2·b·N)``; 0: each batch's own size, as the reference
    #: code computes it (its last, smaller batch of an epoch then weighs the KL more)
    kl_batch: int = REFERENCE_BATCH
    lr_schedule: str = "constant"  # reference: constant; "cosine" decays to 0 by the end
    bf16: bool = False             # bfloat16 autocast for the forward pass (not in reference)
    ops_activation: str = "softmax"  # the paper's; the authors' code applies "sigmoid"
    node_positions: int = 0        # >0: one-hot node position appended to X (not in reference)
    seed: int = 3                  # reference default seed
    #: >0: after this many epochs training goes on in evaluation mode (no noise, no
    #: dropout, frozen BatchNorm statistics), as the reference script does (1); 0: never
    train_mode_epochs: int = 0
    #: draw a new order of the training cells every epoch (False: one order drawn before
    #: the first epoch and kept, as the reference script does)
    reshuffle: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class MLP(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Linear (the GIN update's 2-layer MLP)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.lin1 = nn.Linear(in_dim, hidden_dim)
        self.bn = nn.BatchNorm1d(hidden_dim)
        self.lin2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.bn(self.lin1(x))))


class GINLayer(nn.Module):
    r"""``h' = ReLU(BN(MLP((1 + ε) · h + Σ_{j ∈ N(i)} h_j)))`` on dense batched graphs.

    Shapes: ``h [B, N, F]``, ``adj [B, N, N]`` (already bidirectional) -> ``[B, N, H]``.
    """

    def __init__(self, in_dim: int, hidden_dim: int):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(()))
        self.mlp = MLP(in_dim, hidden_dim, hidden_dim)
        self.bn = nn.BatchNorm1d(hidden_dim)

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        b, n, _ = h.shape
        messages = torch.bmm(adj, h)                    # Σ_{j ∈ N(i)} h_j
        updated = (1 + self.eps) * h + messages         # (1 + ε) · h_i + Σ h_j
        out = self.bn(self.mlp(updated.reshape(b * n, -1)))
        return F.relu(out).reshape(b, n, -1)


class Arch2VecModel(nn.Module):
    """GIN encoder with per-node Gaussian heads, and the inner-product decoder."""

    def __init__(self, num_ops: int, cfg: Arch2VecConfig):
        super().__init__()
        self.cfg = cfg
        dims = [num_ops + cfg.node_positions] + [cfg.hidden_dim] * cfg.num_layers
        self.layers = nn.ModuleList(GINLayer(i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.mu_head = nn.Linear(cfg.hidden_dim, cfg.latent_dim)
        self.log_sigma_head = nn.Linear(cfg.hidden_dim, cfg.latent_dim)
        self.ops_head = nn.Linear(cfg.latent_dim, num_ops)
        if cfg.ops_activation not in ("softmax", "sigmoid"):
            raise ValueError(f"ops_activation must be 'softmax' or 'sigmoid', "
                             f"got {cfg.ops_activation!r}")

    def inputs(self, ops: torch.Tensor) -> torch.Tensor:
        """``H⁽⁰⁾``: the one-hot ops, with a one-hot node position appended if configured."""
        return with_positions(ops, self.cfg.node_positions)

    def encode(self, adj: torch.Tensor, ops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-node ``(μ, log σ)``, each ``[B, N, latent_dim]``."""
        bidirectional = adj + adj.transpose(1, 2)       # Ã = A + Aᵀ
        h = self.inputs(ops)
        for layer in self.layers:
            h = layer(h, bidirectional)
        return self.mu_head(h), self.log_sigma_head(h)

    def decode(self, z: torch.Tensor, dropout_mask: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X̂ [B, N, K], Â [B, N, N])`` from per-node latents ``z [B, N, d]``."""
        if dropout_mask is not None:
            z = z * dropout_mask
        logits = self.ops_head(z)
        ops = torch.softmax(logits, dim=-1) if self.cfg.ops_activation == "softmax" \
            else torch.sigmoid(logits)
        return ops, torch.sigmoid(torch.bmm(z, z.transpose(1, 2))).triu(1)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-initialises every layer from ``generator`` (PyTorch's default scheme)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                bound = 1 / math.sqrt(module.in_features)
                with torch.no_grad():
                    # kaiming_uniform(a=√5) reduces to U(-1/√fan_in, 1/√fan_in)
                    module.weight.uniform_(-bound, bound, generator=generator)
                    module.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(module, nn.BatchNorm1d):
                module.reset_parameters()
            elif isinstance(module, GINLayer):
                nn.init.zeros_(module.eps)


def vae_loss(ops_hat, adj_hat, ops, adj, mu, log_sigma, kl_batch: int = REFERENCE_BATCH):
    """BCE on ops and on the upper-triangular adjacency plus the per-node KL term."""
    recon = F.binary_cross_entropy(ops_hat, ops) + F.binary_cross_entropy(adj_hat, adj.triu(1))
    n = ops.shape[1]
    b = kl_batch or ops.shape[0]
    kl = -0.5 / (b * n) * torch.mean(
        torch.sum(1 + 2 * log_sigma - mu.pow(2) - torch.exp(log_sigma).pow(2), dim=-1))
    return recon + kl


class Arch2Vec(LearnedEncoder):
    """arch2vec behind the :class:`~encoders.base.LearnedEncoder` interface: ``fit``
    pretrains without labels.

    Example:
        >>> enc = Arch2Vec(num_ops=7, config=Arch2VecConfig(epochs=1))
        >>> enc.fit(adj, ops)                     # doctest: +SKIP
        >>> z = enc.encode(adj, ops)              # [B, 16] graph embeddings
    """

    name = "arch2vec"
    generative = True
    config_class = Arch2VecConfig
    model_class = Arch2VecModel

    def __init__(self, num_ops: int, config: Arch2VecConfig | None = None,
                 device: str | torch.device = "cpu", frozen_ops: tuple[int, ...] = ()):
        super().__init__(num_ops, config, device, frozen_ops)
        self.model = self.model_class(num_ops, self.config)
        self.model.reset_parameters(self.generator)
        self.model.to(self.device)
        #: per-node mean and std of μ over the training set (the prior for sampling)
        self.latent_mean: torch.Tensor | None = None
        self.latent_std: torch.Tensor | None = None

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        if self.latent_mean is None:
            return {}
        return {"prior.mean": self.latent_mean, "prior.std": self.latent_std}

    def load_extra(self, tensors: dict[str, torch.Tensor]) -> None:
        if "prior.mean" in tensors:
            self.latent_mean, self.latent_std = tensors["prior.mean"], tensors["prior.std"]

    def _noise(self, shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator).to(self.device)

    def _dropout_mask(self, shape) -> torch.Tensor:
        p = self.config.dropout
        keep = torch.rand(shape, generator=self.generator) >= p
        return (keep.float() / (1 - p)).to(self.device)

    def train_epochs(self, adj: torch.Tensor, ops: torch.Tensor
                     ) -> Iterator[EpochReport]:
        """Trains epoch by epoch, yielding a report after each (for progress and metrics)."""
        cfg = self.config
        adj = adj.to(self.device, torch.float32)
        ops = ops.to(self.device, torch.float32)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.999),
                                     eps=1e-8)
        n = len(adj)
        steps = cfg.epochs * math.ceil(n / cfg.batch_size)
        if cfg.lr_schedule == "cosine":
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps)))
        elif cfg.lr_schedule == "constant":
            schedule = None
        else:
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {cfg.lr_schedule!r}")
        order = torch.randperm(n, generator=self.generator).to(self.device)
        for epoch in range(cfg.epochs):
            stochastic = not cfg.train_mode_epochs or epoch < cfg.train_mode_epochs
            self.model.train(stochastic)
            start = time.perf_counter()
            if epoch and cfg.reshuffle:
                order = torch.randperm(n, generator=self.generator).to(self.device)
            # the loss is summed on the device: a .item() per step would make a GPU wait
            # for every batch before the next can be launched
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            mus = []
            for batch in order.split(cfg.batch_size):
                a, x = adj[batch], ops[batch]
                with torch.autocast(self.device.type, torch.bfloat16, enabled=cfg.bf16):
                    mu, log_sigma = self.model.encode(a, x)
                    if stochastic:
                        z = mu + torch.exp(log_sigma) * self._noise(mu.shape)
                        ops_hat, adj_hat = self.model.decode(z, self._dropout_mask(z.shape))
                    else:                               # see train_mode_epochs
                        ops_hat, adj_hat = self.model.decode(mu)
                loss = vae_loss(ops_hat.float(), adj_hat.float(), x, a, mu.float(),
                                log_sigma.float(), cfg.kl_batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                total += loss.detach().double() * len(batch)
                mus.append(mu.detach())
            all_mu = torch.cat(mus)
            self.latent_mean, self.latent_std = all_mu.mean(0), all_mu.std(0)
            self.model.eval()
            loss_mean = float(total) / n                       # one synchronisation per epoch
            yield EpochReport(epoch + 1, loss_mean, time.perf_counter() - start, n)

    @torch.no_grad()
    def node_latents(self, adj: torch.Tensor, ops: torch.Tensor, batch_size: int = 8192
                     ) -> torch.Tensor:
        """Per-node ``μ [B, N, d]`` in inference mode."""
        self.model.eval()
        out = []
        for a, x in zip(adj.split(batch_size), ops.split(batch_size)):
            mu, _ = self.model.encode(a.to(self.device, torch.float32),
                                      x.to(self.device, torch.float32))
            out.append(mu)
        return torch.cat(out)

    def encode(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        """Graph embeddings: the mean over nodes of ``μ``, ``[B, latent_dim]``."""
        return self.node_latents(adj, ops).mean(dim=1)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decodes per-node latents ``z [B, N, d]`` (no dropout)."""
        self.model.eval()
        return self.model.decode(z.to(self.device, torch.float32))

    @torch.no_grad()
    def reconstruct(self, adj: torch.Tensor, ops: torch.Tensor, batch_size: int = 8192
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hard reconstructions ``(adj 0/1 [B, N, N], op index [B, N])`` via ``Z = μ``."""
        adj_out, ops_out = [], []
        for a, x in zip(adj.split(batch_size), ops.split(batch_size)):
            ops_hat, adj_hat = self.decode(self.node_latents(a, x))
            adj_out.append((adj_hat > 0.5).to(torch.uint8).cpu())
            ops_out.append(ops_hat.argmax(-1).cpu())
        return torch.cat(adj_out), torch.cat(ops_out)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Hard decodings of ``n`` latents drawn per node from N(mean, std) of training μ."""
        if self.latent_mean is None:
            raise RuntimeError("sample() needs a fitted model (call fit first)")
        eps = torch.randn((n, *self.latent_mean.shape), generator=generator).to(self.device)
        z = self.latent_mean + eps * self.latent_std
        ops_hat, adj_hat = self.decode(z)
        return (adj_hat > 0.5).to(torch.uint8).cpu(), ops_hat.argmax(-1).cpu()


def reconstruction_accuracy(adj: torch.Tensor, ops: torch.Tensor, adj_rec: torch.Tensor,
                            op_rec: torch.Tensor) -> dict[str, float]:
    """Ops accuracy (per node), adjacency accuracy (per upper-triangle entry), exact graphs.

    ``adj``/``ops`` are the inputs (``ops`` one-hot), ``adj_rec``/``op_rec`` hard
    reconstructions. Padding nodes (all-zero op rows) are left out of the ops accuracy.
    """
    adj, ops, adj_rec, op_rec = adj.cpu(), ops.cpu(), adj_rec.cpu(), op_rec.cpu()
    n = adj.shape[1]
    real = ops.sum(-1) > 0
    op_ok = (op_rec == ops.argmax(-1)) | ~real
    upper = torch.ones(n, n, dtype=torch.bool).triu(1)
    adj_ok = (adj_rec.bool() == adj.bool()) | ~upper
    return {
        "ops_acc": float(op_ok[real].float().mean()),
        "adj_acc": float(adj_ok[:, upper].float().mean()),
        "exact_acc": float((op_ok.all(-1) & adj_ok.flatten(1).all(-1)).float().mean()),
    }


def wl_colours(adj: torch.Tensor, ops: torch.Tensor, rounds: int) -> torch.Tensor:
    """1-WL colours ``[B, N]`` after ``rounds`` refinements on the bidirectional graph,
    starting from the op labels. Equal colours within a graph mean equal GIN outputs after
    that many layers, for any weights. Padding nodes (all-zero op rows) get colour -1."""
    adj = torch.as_tensor(adj).bool().cpu()
    ops = torch.as_tensor(ops).cpu()
    b, n = adj.shape[:2]
    real = ops.sum(-1) > 0
    colour = torch.where(real, ops.argmax(-1), -1)
    both = adj | adj.transpose(1, 2)
    for _ in range(rounds):
        neighbours = torch.where(both, colour[:, None, :], torch.iinfo(torch.int64).max)
        signature = torch.cat([colour[..., None], neighbours.sort(-1).values], dim=-1)
        _, colour = torch.unique(signature.reshape(b * n, -1), dim=0, return_inverse=True)
        colour = torch.where(real, colour.reshape(b, n), -1)
    return colour


def inner_product_ambiguous(adj: torch.Tensor, ops: torch.Tensor, rounds: int) -> torch.Tensor:
    """``[B]`` bool: graphs with two real nodes ``i < j`` that ``rounds`` GIN layers cannot
    tell apart (equal 1-WL colours) and that are *not* joined. Such nodes get the same
    ``μ``, so ``sigmoid(μ_i · μ_j) = sigmoid(|μ|²) > ½`` decodes an edge between them: no
    GIN encoder with the inner-product decoder reconstructs these graphs exactly, and
    ``1 - mean`` is the exact-reconstruction ceiling of the model on a set of graphs."""
    colour = wl_colours(adj, ops, rounds)
    n = colour.shape[1]
    same = (colour[:, :, None] == colour[:, None, :]) & (colour[:, :, None] >= 0)
    upper = torch.ones(n, n, dtype=torch.bool).triu(1)
    return (same & ~torch.as_tensor(adj).bool().cpu() & upper).flatten(1).any(-1)
