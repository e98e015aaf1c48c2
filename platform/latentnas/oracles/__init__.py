"""Benchmark oracles: tabular lookups (NB201, NAS-Bench-Graph, NB101) behind one interface."""

from __future__ import annotations

from latentnas.errors import ConfigError, UnknownNameError
from latentnas.oracles.base import Oracle, OracleInfo, QueryBatch, TabularOracle
from latentnas.oracles.nbgraph import DATASETS as NBGRAPH_DATASETS

#: space -> (default dataset, datasets)
DATASETS = {
    "nb201": ("cifar10", ("cifar10",)),
    "nb101": ("cifar10", ("cifar10",)),
    # the enumerated NB101 space, answered by training (latentnas.oracles.training)
    # "tfrecord": the official table (your file), mapped onto the enumeration's ids
    "nb101-full": ("digits", ("digits", "cifar10", "tfrecord")),
    "nbgraph": ("cora", NBGRAPH_DATASETS),
}


def get_oracle(space: str, dataset: str | None = None, *, nb101_data: str | None = None,
               epochs: int = 108, training: dict | None = None) -> Oracle:
    """The shared oracle for ``space`` on ``dataset`` (its default when ``None``)."""
    if space == "nbgraph-proteins":
        space, dataset = "nbgraph", dataset or "proteins"
    if space not in DATASETS:
        raise UnknownNameError("space with an oracle", space, tuple(DATASETS))
    default, allowed = DATASETS[space]
    dataset = dataset or default
    if dataset not in allowed:
        raise UnknownNameError(f"{space} dataset", dataset, allowed)
    if space == "nb201":
        from latentnas.oracles.nb201 import load_nb201_cifar10
        return load_nb201_cifar10()
    if space == "nbgraph":
        from latentnas.oracles.nbgraph import load_nbgraph
        return load_nbgraph(dataset)
    if space == "nb101-full" and dataset == "tfrecord":
        from latentnas.oracles.nb101 import load_nb101_full
        return load_nb101_full(nb101_data, epochs)
    if space == "nb101-full":
        from latentnas.oracles.training import TrainingOracle, TrainingSettings
        from latentnas.spaces import get_space

        full = get_space("nb101-full")
        settings = TrainingSettings(**{**(training or {}), "dataset": dataset})
        return TrainingOracle(full, full.cells(), settings)
    from latentnas.oracles.nb101 import load_nb101
    if epochs not in (4, 12, 36, 108):
        raise ConfigError(f"NB101 epochs must be 4, 12, 36 or 108, got {epochs}")
    return load_nb101(nb101_data, epochs)


__all__ = ["Oracle", "OracleInfo", "QueryBatch", "TabularOracle", "get_oracle", "DATASETS"]
