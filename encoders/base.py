"""The encoder interface shared by arch2vec, the other learned encoders and the baselines.

Encoders are plain PyTorch: they take batched cell tensors and know nothing of spaces,
files or Ray. ``adj`` is ``[B, N, N]`` (0/1, upper-triangular: ``adj[b, i, j] = 1`` for an
edge ``i -> j``) and ``ops`` is one-hot ``[B, N, K]``; zero rows are padding nodes.

Two levels:

* :class:`Encoder`: ``fit`` / ``encode`` (and ``decode`` for generative ones); the
  discrete baselines and the supervised GIN implement only this;
* :class:`LearnedEncoder`: an encoder pretrained without accuracies, that the platform
  can pretrain, checkpoint and reload by name (``encoders.registry``): it is built from
  ``(num_ops, config, device, frozen_ops)``, trains epoch by epoch
  (:meth:`LearnedEncoder.train_epochs`), and round-trips its weights through
  :meth:`LearnedEncoder.tensors` / :meth:`LearnedEncoder.load_tensors`. Its ``config`` is a
  frozen dataclass with at least ``seed`` and ``epochs``, written into the checkpoint header.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Callable, ClassVar, Iterator

import torch
from torch import nn


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


def with_positions(x: torch.Tensor, positions: int) -> torch.Tensor:
    """``[B, N, F] -> [B, N, F + positions]``: a one-hot node position appended (``x``
    unchanged when ``positions`` is 0). Positions tell apart nodes that message passing
    cannot (twin layers); a model built for ``positions`` takes graphs of at most that
    many nodes."""
    if not positions:
        return x
    b, n, _ = x.shape
    if n > positions:
        raise ValueError(f"graphs of {n} nodes, but the model was built for "
                         f"node_positions={positions}")
    eye = torch.eye(n, positions, device=x.device, dtype=x.dtype)
    return torch.cat([x, eye.expand(b, n, -1)], dim=-1)


@dataclass
class EpochReport:
    """One pretraining epoch: mean loss over its graphs, seconds, graphs seen."""

    epoch: int
    loss: float
    seconds: float
    graphs: int


@dataclass(frozen=True)
class EncoderConfig:
    """Settings every learned encoder has (subclasses add their own, with defaults)."""

    hidden_dim: int = 128
    latent_dim: int = 16
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    grad_clip: float = 5.0
    seed: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


class LearnedEncoder(Encoder):
    """An encoder pretrained on cells without accuracies (see the module docstring).

    Subclasses set ``config_class``, build ``self.model`` (an ``nn.Module``) in
    ``__init__`` after calling ``super().__init__``, and implement :meth:`step_loss` (the
    loss of one batch, drawing any randomness from ``self.generator``) and :meth:`encode`.
    The default :meth:`train_epochs` is Adam over shuffled batches with gradient clipping;
    the loss is summed on the device and read once per epoch.

    Example (a runnable plug-in: an op-embedding bag trained to predict each node's op
    from its neighbours; registered under a name, it is pretrained and searched like
    arch2vec)::

        import torch
        from torch import nn
        from encoders.base import EncoderConfig, LearnedEncoder
        from encoders.registry import register

        @register("neighbour-bag")
        class NeighbourBag(LearnedEncoder):
            config_class = EncoderConfig

            def __init__(self, num_ops, config=None, device="cpu", frozen_ops=()):
                super().__init__(num_ops, config, device, frozen_ops)
                self.model = nn.Sequential(nn.Linear(num_ops, self.config.latent_dim),
                                           nn.Linear(self.config.latent_dim, num_ops))
                self.init_parameters()

            def step_loss(self, adj, ops):
                both = adj + adj.transpose(1, 2)
                context = self.model[0](both @ ops)          # neighbours' ops, embedded
                logits = self.model[1](context)
                real = ops.sum(-1) > 0
                return nn.functional.cross_entropy(logits[real], ops[real].argmax(-1))

            @torch.no_grad()
            def encode(self, adj, ops):
                both = (adj + adj.transpose(1, 2)).to(self.device, torch.float32)
                x = ops.to(self.device, torch.float32)
                return self.model[0](both @ x).mean(1)
    """

    config_class: ClassVar[type] = EncoderConfig
    #: when set, ``__init__`` builds ``self.model = network_class(num_ops, config)`` and
    #: initialises it from the seed
    network_class: ClassVar[type | None] = None

    def __init__(self, num_ops: int, config=None, device: str | torch.device = "cpu",
                 frozen_ops: tuple[int, ...] = ()):
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, "
                            f"got {type(self.config).__name__}")
        self.num_ops = num_ops
        self.device = torch.device(device)
        #: op indices that augmentations never change (a cell's input and output)
        self.frozen_ops = tuple(int(k) for k in frozen_ops)
        self.dim = self.config.latent_dim
        self.generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        self.model: nn.Module | None = None
        if self.network_class is not None:
            self.model = self.network_class(num_ops, self.config)
            self.init_parameters()

    # -- what a subclass provides ---------------------------------------------------------
    def step_loss(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (already on the device, float32)."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every optimiser step (e.g. to move an EMA target)."""

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors besides ``model``'s that a checkpoint must keep (e.g. a latent prior)."""
        return {}

    def load_extra(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restores what :meth:`extra_tensors` saved."""

    # -- shared machinery -----------------------------------------------------------------
    def init_parameters(self) -> None:
        """(Re)initialises ``self.model`` from the seeded generator, then moves it to the
        device; call at the end of a subclass's ``__init__``."""
        seeded_init(self.model, self.generator)
        self.model.to(self.device)

    @torch.no_grad()
    def map_batches(self, adj: torch.Tensor, ops: torch.Tensor, fn: Callable,
                    batch_size: int = 8192) -> torch.Tensor:
        """``fn(adj, ops)`` in eval mode over batches moved to the device (float32),
        concatenated: how ``encode`` runs over a whole space without holding it at once."""
        self.model.eval()
        return torch.cat([fn(a.to(self.device, torch.float32), x.to(self.device, torch.float32))
                          for a, x in zip(adj.split(batch_size), ops.split(batch_size))])

    def optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.config.lr)

    def train_epochs(self, adj: torch.Tensor, ops: torch.Tensor) -> Iterator[EpochReport]:
        """Trains epoch by epoch, yielding a report after each (for progress and metrics)."""
        cfg = self.config
        adj = adj.to(self.device, torch.float32)
        ops = ops.to(self.device, torch.float32)
        optimizer = self.optimizer()
        n = len(adj)
        for epoch in range(cfg.epochs):
            self.model.train()
            start = time.perf_counter()
            order = torch.randperm(n, generator=self.generator).to(self.device)
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            for batch in order.split(cfg.batch_size):
                if len(batch) < 2:           # BatchNorm and batch statistics need two graphs
                    continue
                loss = self.step_loss(adj[batch], ops[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                optimizer.step()
                self.after_step()
                total += loss.detach().double() * len(batch)
            self.model.eval()
            yield EpochReport(epoch + 1, float(total) / n, time.perf_counter() - start, n)

    def fit(self, adj, ops, y=None, on_epoch: Callable[[EpochReport], None] | None = None):
        for report in self.train_epochs(adj, ops):
            if on_epoch:
                on_epoch(report)
        return self

    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint holds: ``model.*`` weights and the extra tensors."""
        out = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in self.model.state_dict().items()}
        out.update({k: v.detach().cpu().contiguous() for k, v in self.extra_tensors().items()})
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Loads :meth:`tensors`' output; a missing or misshapen weight raises ``RuntimeError``."""
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(state, strict=True)
        self.model.to(self.device)
        self.load_extra({k: v.to(self.device) for k, v in tensors.items()
                         if not k.startswith("model.")})
        self.model.eval()


def seeded_init(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation, drawn from ``generator`` in module order:
    ``Linear`` weight and bias ``U(-1/√fan_in, 1/√fan_in)`` (what ``kaiming_uniform(a=√5)``
    reduces to), recurrent cells ``U(-1/√hidden, 1/√hidden)`` for every weight, batch norm
    reset, a GIN layer's ``ε`` zero."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1 / math.sqrt(m.in_features)
            with torch.no_grad():
                m.weight.uniform_(-bound, bound, generator=generator)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=generator)
        elif isinstance(m, (nn.GRUCell, nn.LSTMCell)):
            bound = 1 / math.sqrt(m.hidden_size)
            with torch.no_grad():
                for p in m.parameters(recurse=False):
                    p.uniform_(-bound, bound, generator=generator)
        elif isinstance(m, (nn.BatchNorm1d, nn.LayerNorm)):
            m.reset_parameters()
        elif isinstance(getattr(m, "eps", None), nn.Parameter):
            nn.init.zeros_(m.eps)
