"""Seeding and state helpers for the PyTorch-based searchers."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def generator_from(rng: np.random.Generator) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``rng`` (so one numpy seed fixes both)."""
    return torch.Generator().manual_seed(int(rng.integers(2**62)))


def module_state(module: nn.Module) -> dict[str, np.ndarray]:
    """A detached numpy copy of ``module``'s parameters and buffers."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_module_state(module: nn.Module, state: dict[str, np.ndarray]) -> None:
    module.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
