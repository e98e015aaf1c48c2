"""Benchmark oracles: tabular lookups (NB201, NAS-Bench-Graph, NB101) and a training oracle
behind one interface. Which oracle answers a (space, dataset) is decided in one place,
``latentnas.benchmarks``."""

from __future__ import annotations

from latentnas.oracles.base import Oracle, OracleInfo, QueryBatch, TabularOracle


def get_oracle(space: str, dataset: str | None = None, *, nb101_data: str | None = None,
               training: dict | None = None) -> Oracle:
    """The shared oracle for ``space`` on ``dataset`` (its default when ``None``):
    ``latentnas.benchmarks.resolve(...).oracle``."""
    from latentnas.benchmarks import resolve

    return resolve(space, dataset, nb101_data=nb101_data, training=training).oracle


__all__ = ["Oracle", "OracleInfo", "QueryBatch", "TabularOracle", "get_oracle"]
