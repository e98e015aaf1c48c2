"""The benchmark registry: every search space with its datasets, resolved in one place.

A name (``--space``, ``space:`` in a file) becomes a :class:`Benchmark` here and nowhere
else: :func:`check` validates a (space, dataset) pair without loading anything (flags and
files are checked before Ray starts), :func:`resolve` returns the benchmark object —
space, oracle, the trained encoder and features behind an encoding (decided in
``latentnas.models``) and the search domain — and everything below takes that object.
One record per space holds its datasets and their default, its size, its arch2vec
pretraining defaults and what ``latentnas spaces`` prints about it.

The proteins table of NAS-Bench-Graph was built on a subset of the layer ops, so
``nbgraph`` with dataset ``proteins`` *is* the ``nbgraph-proteins`` space: :func:`check`
maps the one to the other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Callable

import numpy as np

from latentnas import models
from latentnas.domains import make_domain
from latentnas.errors import ConfigError, UnknownNameError
from latentnas.models import TrainedEncoder
from latentnas.oracles.nbgraph import DATASETS as NBGRAPH_DATASETS


@dataclass(frozen=True)
class BenchmarkInfo:
    """What is known about a space before any data is loaded."""

    space: str
    title: str
    datasets: tuple[str, ...]
    default_dataset: str
    #: number of cells; the searchable ids are 0..cells-1 (None: sampled, not searchable)
    cells: int | None
    #: arch2vec pretraining settings measured for this space (encoders.arch2vec config)
    pretrain: dict = field(default_factory=dict)
    #: where its oracle data comes from, for ``latentnas spaces``
    data: str = ""
    #: queries per search in the paper's comparison on this space
    budget: int = 150

    @property
    def searchable(self) -> bool:
        return self.cells is not None


#: NAS-Bench-Graph: 10.6 % of its cells have twin layers no GIN tells apart, which the
#: inner-product decoder always joins (see encoders.arch2vec), so the paper's model tops out
#: at 89 % exact reconstruction; node positions lift that bound (99.7 % at 32 epochs)
_GRAPH_PRETRAIN = dict(batch_size=64, epochs=32, lr=5e-3, lr_schedule="cosine",
                       node_positions=6)
#: NB101: the paper's model with the reference's batch, epochs and learning rate
_NB101_PRETRAIN = dict(batch_size=32, epochs=8, lr=1e-3, lr_schedule="constant")

RECORDS: dict[str, BenchmarkInfo] = {r.space: r for r in (
    BenchmarkInfo("nb201", "NAS-Bench-201", ("cifar10",), "cifar10", 15_625,
                  # 100 % held-out exact reconstruction at half the reference's time
                  dict(batch_size=64, epochs=8, lr=2e-3, lr_schedule="cosine"),
                  "analog-nasbench 0.1.3 (PyPI): CIFAR-10 test accuracy"),
    BenchmarkInfo("nbgraph", "NAS-Bench-Graph", NBGRAPH_DATASETS, "cora", 26_206,
                  _GRAPH_PRETRAIN, "nas-bench-graph (PyPI): valid_perf / perf per dataset"),
    BenchmarkInfo("nbgraph-proteins", "NAS-Bench-Graph (proteins ops)", ("proteins",),
                  "proteins", 2_021, _GRAPH_PRETRAIN, "nas-bench-graph (PyPI), proteins"),
    BenchmarkInfo("nb101", "NAS-Bench-101 (sampled)", ("cifar10",), "cifar10", None,
                  _NB101_PRETRAIN, "your nasbench tfrecord (--nb101-data)"),
    BenchmarkInfo("nb101-full", "NAS-Bench-101 (enumerated)", ("digits", "cifar10", "tfrecord"),
                  "digits", 423_624, _NB101_PRETRAIN,
                  "training on query (digits, cifar10) or your tfrecord (tfrecord)"),
)}
SPACES = tuple(RECORDS)
SEARCHABLE = tuple(name for name, r in RECORDS.items() if r.searchable)


def check(space: str, dataset: str | None = None) -> tuple[BenchmarkInfo, str]:
    """``(record, dataset)`` for a space name and an optional dataset (the space's default
    when ``None``), without loading data; :class:`UnknownNameError` for unknown names."""
    if not isinstance(space, str) or space not in RECORDS:
        raise UnknownNameError("space", space, SPACES)
    if dataset is not None and not isinstance(dataset, str):
        raise ConfigError(f"dataset must be a name such as "
                          f"{RECORDS[space].default_dataset!r}, got {dataset!r}")
    if space == "nbgraph" and dataset == "proteins":
        space = "nbgraph-proteins"
    info = RECORDS[space]
    dataset = dataset or info.default_dataset
    if dataset not in info.datasets:
        raise UnknownNameError(f"{space} dataset", dataset, info.datasets)
    return info, dataset


def resolve(space: str, dataset: str | None = None, *, nb101_data: str | None = None,
            training: dict | None = None) -> "Benchmark":
    """The benchmark for ``space`` on ``dataset``: checked names, then a shared object whose
    space, oracle and encodings load on first use (oracles and spaces once per process)."""
    info, dataset = check(space, dataset)
    return _benchmark(info.space, dataset, nb101_data, _freeze(training or {}))


@lru_cache(maxsize=None)
def _benchmark(space: str, dataset: str, nb101_data, training) -> "Benchmark":
    return Benchmark(RECORDS[space], dataset, nb101_data, dict(training))


def _freeze(mapping: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in mapping.items()))


class Benchmark:
    """A space on one dataset: :attr:`space`, :attr:`oracle`, :meth:`features` of an
    encoding and the search :meth:`domain`. Build it with :func:`resolve`."""

    def __init__(self, info: BenchmarkInfo, dataset: str, nb101_data: str | None = None,
                 training: dict | None = None):
        self.info, self.dataset = info, dataset
        self.nb101_data, self.training = nb101_data, dict(training or {})

    def __repr__(self) -> str:
        return f"<Benchmark {self.name}/{self.dataset}>"

    @property
    def name(self) -> str:
        return self.info.space

    @cached_property
    def space(self):
        from latentnas.spaces import get_space

        return get_space(self.info.space)

    @cached_property
    def oracle(self):
        """The oracle (tables are loaded once per process and shared)."""
        name, dataset = self.info.space, self.dataset
        if name == "nb201":
            from latentnas.oracles.nb201 import load_nb201_cifar10

            return load_nb201_cifar10()
        if name.startswith("nbgraph"):
            from latentnas.oracles.nbgraph import load_nbgraph

            return load_nbgraph(dataset)
        if name == "nb101":
            from latentnas.oracles.nb101 import load_nb101

            return load_nb101(self.nb101_data)
        if dataset == "tfrecord":
            from latentnas.oracles.nb101 import load_nb101_full

            return load_nb101_full(self.nb101_data)
        from latentnas.oracles.training import TrainingOracle, TrainingSettings

        try:
            settings = TrainingSettings(**{**self.training, "dataset": dataset})
        except TypeError as exc:
            raise ConfigError(f"unknown training setting: {exc}; see "
                              "latentnas.oracles.training.TrainingSettings") from None
        return TrainingOracle(self.space, self.space.cells(), settings)

    @property
    def search_ids(self) -> np.ndarray | None:
        """The ids a search may query when the oracle covers part of the space."""
        return getattr(self.oracle, "available", None)

    @property
    def value_scale(self) -> float:
        """100 when the oracle's metrics are percentages, else 1 (see searchers.Domain)."""
        return 100.0 if self.oracle.info.percent else 1.0

    def encoder(self, encoding: str = "arch2vec", seed: int | None = None) -> TrainedEncoder:
        """The trained encoder behind ``encoding`` (a learned encoder's name, its
        ``:reference`` variant, or a model directory/URI; ``seed``: the pretraining seed of a
        default or reference model): see :func:`latentnas.models.trained_encoder`."""
        return models.trained_encoder(self, encoding, seed)

    def features(self, encoding: str, encoder_seed: int | None = None) -> np.ndarray | None:
        """``[M, d]`` vectors of every cell under ``encoding`` (``None`` for encodings
        without vectors); see :func:`latentnas.models.features`."""
        return models.features(self, encoding, encoder_seed).array

    def domain(self, encoding: str, encoder_seed: int | None = None, *,
               features: np.ndarray | None = None, nearest: Callable | None = None,
               top_k: Callable | None = None):
        """The searchable cells as a :class:`searchers.Domain` under ``encoding``."""
        if features is None:
            features = self.features(encoding, encoder_seed)
        return make_domain(self.space, features, ids=self.search_ids, nearest=nearest,
                           top_k=top_k, value_scale=self.value_scale)


def nb101_data_status() -> str:
    """Where ``nb101``'s data would come from on this machine, for ``latentnas spaces``."""
    from latentnas.oracles.nb101 import ENV_VAR

    path = os.environ.get(ENV_VAR)
    if path and os.path.isfile(path):
        return f"tfrecord at {path}"
    return f"needs your tfrecord (--nb101-data or {ENV_VAR})"
