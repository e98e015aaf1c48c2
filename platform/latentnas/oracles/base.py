"""The oracle interface: how good is a cell?

An oracle answers, per cell, the *search* metric (what a searcher may see), the *report*
metric (what regret is computed on; never shown to searchers) and a *cost* (training
seconds, or a stand-in stated in ``info.cost_unit``). Higher metric is better.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from latentnas.errors import NotInBenchmarkError
from latentnas.spaces.base import Cell, SearchSpace


@dataclass(frozen=True)
class OracleInfo:
    """What an oracle measures, stated for users and stored with results."""

    name: str
    space: str
    dataset: str
    search_metric: str
    report_metric: str
    cost_unit: str
    notes: str = ""
    extras: tuple[str, ...] = ()
    #: metrics are percentages (0-100) rather than fractions (0-1)
    percent: bool = False


@dataclass(frozen=True)
class QueryBatch:
    """Answers for a batch of ids, as aligned arrays."""

    ids: np.ndarray
    search: np.ndarray
    report: np.ndarray
    cost: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def record(self, k: int) -> dict[str, float | int]:
        out = {"id": int(self.ids[k]), "search": float(self.search[k]),
               "report": float(self.report[k]), "cost": float(self.cost[k])}
        out.update({name: float(v[k]) for name, v in self.extras.items()})
        return out


class Oracle(ABC):
    """Answers queries about the cells of one space on one dataset."""

    space: SearchSpace
    info: OracleInfo

    @abstractmethod
    def index(self, cell: Cell) -> int:
        """The oracle's id of ``cell``; raises :class:`NotInBenchmarkError` if absent."""

    @abstractmethod
    def query_ids(self, ids: Sequence[int] | np.ndarray) -> QueryBatch:
        """Batched answers for ids (the fast path; one call per batch, never per cell)."""

    def query(self, cell: Cell) -> dict[str, float | int]:
        """One cell's record: id, search, report, cost and the oracle's extra columns."""
        return self.query_ids([self.index(cell)]).record(0)

    @property
    @abstractmethod
    def optimum_search(self) -> float:
        """Best search metric over the whole table."""

    @property
    @abstractmethod
    def optimum_report(self) -> float:
        """Best report metric over the whole table (regret is measured from it)."""


class TabularOracle(Oracle):
    """An oracle backed by arrays aligned with ids ``0..n-1``.

    For a finite space the ids are the space's own; otherwise (NB101 from a user file)
    they are the rows of the table and ``cells`` holds the matching cells.
    """

    def __init__(self, space: SearchSpace, info: OracleInfo, search: np.ndarray,
                 report: np.ndarray, cost: np.ndarray, extras: dict[str, np.ndarray] | None = None,
                 hashes: Sequence[str] | None = None, cells: Sequence[Cell] | None = None,
                 available: np.ndarray | None = None):
        self.space, self.info = space, info
        #: the ids that have data, ascending, when the table covers only part of the space
        #: (its other rows are NaN and never queried; searches run on these ids only)
        self.available = None if available is None else np.sort(np.asarray(available, np.int64))
        #: the cells behind the ids (only for tables over a space that is not enumerated)
        self.cells = list(cells) if cells is not None else None
        self.search = np.ascontiguousarray(search, dtype=np.float64)
        self.report = np.ascontiguousarray(report, dtype=np.float64)
        self.cost = np.ascontiguousarray(cost, dtype=np.float64)
        self.extras = {k: np.ascontiguousarray(v, dtype=np.float64)
                       for k, v in (extras or {}).items()}
        self._hash_to_id = None if hashes is None else {h: i for i, h in enumerate(hashes)}
        for arr in (self.search, self.report, self.cost, *self.extras.values()):
            arr.setflags(write=False)

    def __len__(self) -> int:
        return len(self.search)

    def index(self, cell: Cell) -> int:
        if self._hash_to_id is None:
            return self.space.index(cell)
        h = self.space.canonical_hash(cell)
        try:
            return self._hash_to_id[h]
        except KeyError:
            raise NotInBenchmarkError(
                f"cell {self.space.format(cell)} (hash {h}) is valid but has no entry in "
                f"{self.info.name}; is the data file complete?") from None

    def query_ids(self, ids) -> QueryBatch:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            bad = ids[(ids < 0) | (ids >= len(self))][0]
            raise NotInBenchmarkError(f"id {bad} is outside 0..{len(self) - 1} of {self.info.name}")
        if self.available is not None and ids.size:
            missing = ids[np.isnan(self.search[ids])]
            if missing.size:
                raise NotInBenchmarkError(
                    f"id {int(missing[0])} has no entry in {self.info.name} (it covers "
                    f"{len(self.available):,} of the space's cells); search its available ids")
        return QueryBatch(ids, self.search[ids], self.report[ids], self.cost[ids],
                          {k: v[ids] for k, v in self.extras.items()})

    @property
    def optimum_search(self) -> float:
        return float(np.nanmax(self.search))

    @property
    def optimum_report(self) -> float:
        return float(np.nanmax(self.report))

    def table(self):
        """The whole table as a pandas DataFrame indexed by id."""
        import pandas as pd

        cols = {"search": self.search, "report": self.report, "cost": self.cost, **self.extras}
        return pd.DataFrame(cols).rename_axis("id")
