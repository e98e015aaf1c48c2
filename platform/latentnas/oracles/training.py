"""A NAS-Bench-101 oracle that trains each queried cell (nasbench-pytorch).

A cell becomes a network with ``nasbench_pytorch.model.Network`` (stem, ``num_stacks``
stacks of ``modules_per_stack`` copies of the cell, downsampling between stacks, global
pooling, a linear classifier) and is trained with the settings of
:class:`TrainingSettings`, stated explicitly: SGD with Nesterov momentum 0.9, weight decay
1e-4, cosine learning-rate decay to 0 over ``epochs``, cross-entropy. The answer is the
validation accuracy (search metric), the test accuracy (report metric), the training
seconds (cost) and the parameter count.

Datasets:

* ``digits`` (the default and the tests'): scikit-learn's 1,797 handwritten digits, 8 x 8
  grey images in 10 classes. They ship inside scikit-learn, which is already installed as
  a dependency of GPyTorch, so nothing is downloaded and a cell trains in seconds on a CPU.
  The split is fixed: 1,197 train, 300 validation, 300 test (stratified, seed 0).
* ``cifar10``: the user's CIFAR-10 in its standard python-pickle form (the directory
  ``cifar-10-batches-py`` with ``data_batch_1..5`` and ``test_batch``). The last 5,000
  training images are the validation set, as NAS-Bench-101 does. It is never downloaded.
* ``synthetic-cifar``: random tensors of CIFAR-10's shape (3 x 32 x 32; 10,000 train, 1,000
  validation, 1,000 test, random labels), for timing the oracle on a device where no
  CIFAR-10 copy exists. Its accuracies mean nothing (about 10 %); ``latentnas bench
  train`` uses it by default.

On a GPU, ``amp="bf16"`` (or ``"fp16"``, CUDA only, with a gradient scaler) runs the
forward pass under autocast and ``channels_last=True`` stores images and weights in
NHWC, which the tensor-core convolutions prefer; both are off by default, so a cell's
answer on CPU does not change.

Answers are cached per canonical hash for the oracle's lifetime, so no cell is trained
twice in an experiment (the experiment hosts the oracle in a pool of ``OracleActor``s
and sends each cell id always to the same one). The search
metric is deterministic on CPU for a given cell and seed; the cost is measured wall time.
There is no known optimum, so regret is not defined (``optimum_*`` are NaN).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from latentnas.errors import ConfigError, MissingDataError
from latentnas.oracles.base import Oracle, OracleInfo, QueryBatch
from latentnas.spaces.base import Cell

DATASETS = ("digits", "cifar10", "synthetic-cifar")
AMP = ("none", "bf16", "fp16")
CIFAR_HINT = ("set `training: {data_dir: DIR}` (TrainingSettings.data_dir) to the directory "
              "`cifar-10-batches-py` of the python version of CIFAR-10 "
              "(https://www.cs.toronto.edu/~kriz/cifar.html); it is never downloaded at run time")


@dataclass(frozen=True)
class TrainingSettings:
    """How a cell is trained. ``short()`` is the setting the tests use."""

    dataset: str = "digits"
    data_dir: str | None = None
    epochs: int = 12
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 1e-4
    stem_channels: int = 32
    num_stacks: int = 3
    modules_per_stack: int = 1
    seed: int = 0
    device: str = "auto"
    #: train on at most this many training images (None: all)
    max_train: int | None = None
    #: autocast of the forward pass: none, bf16 or fp16 (CUDA only)
    amp: str = "none"
    #: NHWC memory format for images and weights
    channels_last: bool = False

    @classmethod
    def short(cls, **overrides) -> "TrainingSettings":
        return cls(**{"epochs": 2, "stem_channels": 8, "max_train": 600, **overrides})

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown training dataset {self.dataset!r}; choose one of: "
                              f"{', '.join(DATASETS)}")
        for key in ("epochs", "batch_size", "stem_channels", "num_stacks", "modules_per_stack"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"training {key} must be a positive integer, "
                                  f"got {getattr(self, key)!r}")
        if self.amp not in AMP:
            raise ConfigError(f"unknown training amp {self.amp!r}; choose one of: "
                              f"{', '.join(AMP)}")
        if not self.lr > 0:
            raise ConfigError(f"training lr must be positive, got {self.lr}")


def load_dataset(settings: TrainingSettings):
    """``(x_train, y_train, x_valid, y_valid, x_test, y_test)`` as float32 NCHW / int64."""
    if settings.dataset == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        x = (x.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
        x = (x - x.mean()) / x.std()
        rng = np.random.default_rng(0)
        order = np.concatenate([rng.permutation(np.flatnonzero(y == c)) for c in range(10)])
        # stratified: every class spread over the three parts in the same proportions
        parts = {"train": [], "valid": [], "test": []}
        for c in range(10):
            idx = order[y[order] == c]
            n_valid = n_test = round(len(idx) * 300 / len(y))
            parts["valid"].append(idx[:n_valid])
            parts["test"].append(idx[n_valid:n_valid + n_test])
            parts["train"].append(idx[n_valid + n_test:])
        tr, va, te = (np.sort(np.concatenate(parts[k])) for k in ("train", "valid", "test"))
        return x[tr], y[tr], x[va], y[va], x[te], y[te]
    if settings.dataset == "synthetic-cifar":
        rng = np.random.default_rng(0)
        parts = []
        for n in (10_000, 1_000, 1_000):
            parts += [rng.standard_normal((n, 3, 32, 32), dtype=np.float32),
                      rng.integers(0, 10, size=n)]
        return tuple(parts)
    directory = settings.data_dir
    if not directory:
        raise MissingDataError(f"the cifar10 training dataset needs a directory: {CIFAR_HINT}")
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not os.path.isfile(os.path.join(directory, n))]
    if missing:
        raise MissingDataError(f"no CIFAR-10 batch {missing[0]} in {directory}; {CIFAR_HINT}")
    batches = []
    for n in names:
        with open(os.path.join(directory, n), "rb") as f:
            d = pickle.load(f, encoding="bytes")
        batches.append((np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32),
                        np.asarray(d[b"labels"], dtype=np.int64)))
    x = np.concatenate([b[0] for b in batches[:5]]).astype(np.float32) / 255.0
    y = np.concatenate([b[1] for b in batches[:5]])
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    std = x.std(axis=(0, 2, 3), keepdims=True)
    x = (x - mean) / std
    x_test = (batches[5][0].astype(np.float32) / 255.0 - mean) / std
    v = min(5000, len(x) // 10)          # 5,000 of the real 50,000
    return x[:-v], y[:-v], x[-v:], y[-v:], x_test, batches[5][1]


def train_cell(cell: Cell, settings: TrainingSettings, data=None) -> dict[str, float]:
    """Trains ``cell`` once; returns valid/test accuracy (%), seconds and parameters."""
    import torch
    from nasbench_pytorch.model import ModelSpec, Network

    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if settings.amp == "fp16" and not device.startswith("cuda"):
        raise ConfigError(f"training amp 'fp16' needs a CUDA device (this one is {device}); "
                          "use amp 'bf16' or 'none'")
    x_tr, y_tr, x_va, y_va, x_te, y_te = data if data is not None else load_dataset(settings)
    if settings.max_train:
        x_tr, y_tr = x_tr[:settings.max_train], y_tr[:settings.max_train]
    matrix = np.asarray(cell.matrix, dtype=np.int64)
    # a cell-dependent seed, so a cell's result does not depend on what was trained before
    digest = hashlib.sha256(repr((cell.matrix, cell.ops, settings.seed)).encode()).digest()
    torch.manual_seed(int.from_bytes(digest[:4], "little"))
    net = Network(ModelSpec(matrix, list(cell.ops)), num_labels=10,
                  in_channels=x_tr.shape[1], stem_out_channels=settings.stem_channels,
                  num_stacks=settings.num_stacks,
                  num_modules_per_stack=settings.modules_per_stack).to(device)
    memory = torch.channels_last if settings.channels_last else torch.contiguous_format
    net = net.to(memory_format=memory)
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.SGD(net.parameters(), lr=settings.lr, momentum=0.9, nesterov=True,
                          weight_decay=settings.weight_decay)
    steps = settings.epochs * int(np.ceil(len(x_tr) / settings.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    xt = torch.as_tensor(x_tr, device=device).contiguous(memory_format=memory)
    yt = torch.as_tensor(y_tr, device=device)
    gen = torch.Generator().manual_seed(int.from_bytes(digest[4:8], "little"))
    kind = "cuda" if device.startswith("cuda") else "cpu"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.amp)

    def autocast():
        return torch.autocast(kind, dtype=dtype, enabled=dtype is not None)

    scaler = torch.amp.GradScaler(kind, enabled=settings.amp == "fp16")
    if kind == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    net.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(xt), generator=gen).to(device)
        for k in range(0, len(xt), settings.batch_size):
            idx = order[k:k + settings.batch_size]
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start

    @torch.no_grad()
    def accuracy(x, y) -> float:
        net.eval()
        hits = 0
        for k in range(0, len(x), 512):
            with autocast():
                out = net(torch.as_tensor(x[k:k + 512], device=device)
                          .contiguous(memory_format=memory))
            hits += int((out.argmax(1).cpu().numpy() == y[k:k + 512]).sum())
        return 100.0 * hits / len(x)

    return {"valid": accuracy(x_va, y_va), "test": accuracy(x_te, y_te),
            "seconds": seconds, "params": float(params)}


class TrainingOracle(Oracle):
    """Trains the cells behind ids ``0..len(cells)-1`` on demand (see the module
    docstring). ``cells`` is any indexable collection of NB101 cells."""

    def __init__(self, space, cells: Sequence[Cell], settings: TrainingSettings | None = None):
        self.space, self.cells = space, cells
        self.settings = settings or TrainingSettings()
        self.info = OracleInfo(
            percent=True,
            name=f"nb101-train-{self.settings.dataset}", space=space.name,
            dataset=self.settings.dataset, search_metric="validation accuracy (%)",
            report_metric="test accuracy (%)", cost_unit="training seconds (measured)",
            notes=f"trained on query: {asdict(self.settings)}", extras=("params",))
        self._data = None
        self._cache: dict[str, dict[str, float]] = {}
        self.trained = 0                      # cells actually trained (cache misses)

    def index(self, cell: Cell) -> int:
        return self.space.index(cell)

    def query_ids(self, ids) -> QueryBatch:
        ids = np.asarray(ids, dtype=np.int64)
        records = [self.train(self.cells[int(i)]) for i in ids]
        return QueryBatch(ids, np.array([r["valid"] for r in records]),
                          np.array([r["test"] for r in records]),
                          np.array([r["seconds"] for r in records]),
                          {"params": np.array([r["params"] for r in records])})

    def train(self, cell: Cell) -> dict[str, float]:
        """The cell's record, trained on first request and cached by canonical hash."""
        key = self.space.canonical_hash(cell)
        if key not in self._cache:
            if self._data is None:
                self._data = load_dataset(self.settings)
            self._cache[key] = train_cell(self.space.canonical(cell), self.settings,
                                          self._data)
            self.trained += 1
        return self._cache[key]

    @property
    def optimum_search(self) -> float:
        return float("nan")

    @property
    def optimum_report(self) -> float:
        return float("nan")
