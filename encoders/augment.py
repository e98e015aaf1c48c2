"""Views of a cell for the self-supervised encoders (``barlow``, ``jepa``).

Which changes are augmentations of a cell graph, i.e. keep it (nearly) the same
architecture while changing its tensors:

* **masking an op** (a layer node's op replaced by a mask token, the node and its edges
  kept): the view is a partially observed cell; nothing invalid is produced, and the
  encoder has to infer the hidden op from the node's neighbourhood. Used by both.
* **substituting an op** (one layer node's op replaced by another op the space allows):
  the view is a one-edit neighbour, a valid cell of every shipped space (NB201's edge
  ops, NB101's three layer ops, NAS-Bench-Graph's GNN layers; the one exception is
  NAS-Bench-Graph's all-``skip`` cell, which the benchmark excludes and a substitution
  reaches with probability below 1 in 9⁴). Neighbours usually perform alike, which is
  the invariance a search wants. Used by ``barlow``.
* **not used — dropping or adding edges**: on NB201 the node graph's topology is fixed
  (every edge op is a node), so there is no edge to drop; on NB101 and NAS-Bench-Graph a
  dropped edge often disconnects a layer or the output, giving an invalid cell, and a
  valid rewiring is a space-specific move the tensors alone cannot check.
* **not an augmentation — relabelling nodes**: every encoder here is permutation
  invariant (message passing plus a symmetric readout), so a permuted view has exactly
  the same embedding and teaches nothing.

Input and output nodes (``frozen_ops``) are never masked or substituted. A view has
``K + 1`` op channels: the last one marks masked nodes (all zero for an unmasked cell).
"""

from __future__ import annotations

import torch


def with_mask_channel(ops: torch.Tensor) -> torch.Tensor:
    """``[B, N, K] -> [B, N, K+1]``: the cell unmasked (mask channel zero)."""
    return torch.cat([ops, ops.new_zeros(*ops.shape[:2], 1)], dim=-1)


def free_nodes(ops: torch.Tensor, frozen_ops: tuple[int, ...]) -> torch.Tensor:
    """``[B, N]`` bool: real nodes whose op may be changed (not input/output)."""
    real = ops.sum(-1) > 0
    if not frozen_ops:
        return real
    return real & ~ops[..., list(frozen_ops)].sum(-1).bool()


def substitute(ops: torch.Tensor, frozen_ops: tuple[int, ...], p: float,
               generator: torch.Generator) -> torch.Tensor:
    """With probability ``p`` per cell, one free node's op becomes another allowed op."""
    b, n, k = ops.shape
    free = free_nodes(ops, frozen_ops).cpu()
    allowed = torch.ones(k, dtype=torch.bool)
    allowed[list(frozen_ops)] = False
    pick = torch.rand(b, generator=generator) < p
    node = torch.where(free, torch.rand(b, n, generator=generator), -1.0).argmax(1)
    pick &= free.any(1)
    current = ops.cpu().argmax(-1).gather(1, node[:, None]).squeeze(1)
    choice = torch.where(allowed, torch.rand(b, k, generator=generator), -1.0)
    choice[torch.arange(b), current] = -1.0                 # never the op it has
    new_op = choice.argmax(1)
    pick &= choice.max(1).values >= 0
    out = ops.clone()
    rows = torch.nonzero(pick).squeeze(1).to(ops.device)
    if len(rows):
        cols = node.to(ops.device)[rows]
        out[rows, cols] = 0
        out[rows, cols, new_op.to(ops.device)[rows]] = 1
    return out


def mask(ops: torch.Tensor, frozen_ops: tuple[int, ...], p: float,
         generator: torch.Generator, at_least_one: bool = False
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(view [B, N, K+1], masked [B, N] bool)``: every free node masked with probability
    ``p`` (and, with ``at_least_one``, one free node of every cell for sure)."""
    b, n, _ = ops.shape
    free = free_nodes(ops, frozen_ops).cpu()
    masked = (torch.rand(b, n, generator=generator) < p) & free
    if at_least_one:
        node = torch.where(free, torch.rand(b, n, generator=generator), -1.0).argmax(1)
        masked[torch.arange(b), node] |= free.any(1)
    masked = masked.to(ops.device)
    view = with_mask_channel(ops).masked_fill(masked[..., None], 0.0)
    view[..., -1] = masked.to(ops.dtype)
    return view, masked
