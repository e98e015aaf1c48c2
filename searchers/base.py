"""The searcher protocol: a search domain, ``ask``/``tell``, and a resumable state.

A :class:`Domain` is what a searcher may look at: the candidate ids of a finite space and,
depending on the strategy, their feature vectors (any encoding), a neighbour function for
one-edit moves, and the cell tensors. A :class:`Searcher` never sees an oracle: the caller
asks for ids, evaluates them and tells the values back (higher is better).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np


class SearcherError(ValueError):
    """Misuse of a searcher: unknown ids, values for ids never asked, a missing domain part."""


@dataclass(frozen=True)
class Choices:
    """A space's cells as a product of categorical choices, for optimizers that search
    over named discrete parameters (Optuna, SMAC, HEBO) rather than over ids.

    Attributes:
        columns: ``(name, categories)`` per choice, e.g. ``("0->1", ("skip_connect",
            "none", ...))`` for an NB201 edge.
        encode: ``id -> codes``: one category index per column, for a candidate id.
        decode: ``codes -> id or None``: the id of the cell those choices make, or ``None``
            when they make no cell of the space (an invalid NB101 matrix, an all-skip
            NAS-Bench-Graph cell). Several code tuples may name the same cell
            (isomorphic forms); ``encode`` gives one of them.
    """

    columns: tuple[tuple[str, tuple[str, ...]], ...]
    encode: Callable[[int], tuple[int, ...]]
    decode: Callable[[tuple[int, ...]], "int | None"]


@dataclass
class Domain:
    """Candidates of a search: ids ``[M]`` and what a strategy may know about them.

    Attributes:
        ids: distinct int ids ``[M]`` (a finite space's cell ids, or a subset of them).
        features: ``[M, d]`` float vectors in the order of ``ids`` (arch2vec embeddings,
            adjacency one-hot, path encoding...), for strategies that move in a vector space.
        neighbours: ``id -> ids`` one edit away (ids outside the domain are ignored), for
            strategies that move on the graph of cells.
        graphs: ``(adj [M, N, N], ops [M, N, K])`` arrays, for strategies that learn their
            own encoding (the supervised GIN).
        nearest: optional ``(point [d], blocked bool [M]) -> position`` that replaces the
            local L2 search over ``features`` (e.g. sharded embedding tables on other
            devices); it must return the unblocked position nearest to ``point``, ties to
            the lowest position.
        top_k: optional ``(scorer, blocked bool [M], k) -> positions`` that replaces local
            scoring of every candidate by an acquisition function (e.g. encoder shards that
            hold the features on other devices). ``scorer`` is a picklable object with
            ``scores(features [c, d] float64) -> [c]`` (see ``searchers.gp.GPScorer``); the
            answer must be the ``k`` unblocked positions with the highest scores, ties to
            the lowest position, as :func:`searchers.acquisition.top_k`.
        value_scale: what the values told are measured in: 100 for percentages, 1 for
            fractions. Strategies whose defaults assume fractions (REINFORCE's constant
            baseline, the paper's fixed EI target) divide by it.
        choices: the cells as categorical choices (:class:`Choices`), for adapters of
            general-purpose optimizers.
        empty_ops, identity_ops: op columns of ``graphs`` whose nodes compute nothing (NB201's
            ``none``) or pass their input on unchanged (NB201's ``skip_connect``), for
            strategies that prune a cell's graph to what it computes (``nasbowl``).
    """

    ids: np.ndarray
    features: np.ndarray | None = None
    neighbours: Callable[[int], Sequence[int]] | None = None
    graphs: tuple[np.ndarray, np.ndarray] | None = None
    nearest: Callable[[np.ndarray, np.ndarray], int] | None = None
    top_k: Callable[[object, np.ndarray, int], Sequence[int]] | None = None
    value_scale: float = 1.0
    choices: Choices | None = None
    empty_ops: tuple[int, ...] = ()
    identity_ops: tuple[int, ...] = ()
    _pos: dict[int, int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64)
        if self.ids.ndim != 1 or len(self.ids) == 0:
            raise SearcherError(f"domain ids must be a non-empty 1-d array, got shape {self.ids.shape}")
        if len(np.unique(self.ids)) != len(self.ids):
            raise SearcherError("domain ids must be distinct")
        if self.features is not None:
            self.features = np.asarray(self.features, dtype=np.float32)
            if self.features.shape[:1] != self.ids.shape:
                raise SearcherError(f"features have {len(self.features)} rows for "
                                    f"{len(self.ids)} ids")
        if self.graphs is not None and len(self.graphs[0]) != len(self.ids):
            raise SearcherError(f"graphs have {len(self.graphs[0])} cells for {len(self.ids)} ids")
        if not self.value_scale > 0:
            raise SearcherError(f"value_scale must be positive, got {self.value_scale!r}")
        if not np.array_equal(self.ids, np.arange(len(self.ids))):
            self._pos = {int(i): p for p, i in enumerate(self.ids)}

    @property
    def size(self) -> int:
        return len(self.ids)

    def positions(self, ids: Sequence[int]) -> np.ndarray:
        """Row positions of ``ids``; raises :class:`SearcherError` for ids not in the domain."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if self._pos is None:
            bad = ids[(ids < 0) | (ids >= self.size)]
            if len(bad):
                raise SearcherError(f"id {int(bad[0])} is not in the domain (ids 0..{self.size - 1})")
            return ids
        try:
            return np.array([self._pos[int(i)] for i in ids], dtype=np.int64)
        except KeyError as exc:
            raise SearcherError(f"id {exc.args[0]} is not in the domain") from None

    def position_of(self, cell_id: int) -> int | None:
        """The row position of ``cell_id``, or ``None`` when it is not in the domain."""
        if self._pos is None:
            return int(cell_id) if 0 <= int(cell_id) < self.size else None
        return self._pos.get(int(cell_id))

    def neighbour_positions(self, pos: int) -> np.ndarray:
        """Positions of the domain members one edit away from position ``pos``."""
        out = []
        for i in self.neighbours(int(self.ids[pos])):
            p = int(i) if self._pos is None else self._pos.get(int(i))
            if p is not None and 0 <= p < self.size:
                out.append(p)
        return np.array(out, dtype=np.int64)


class Searcher(ABC):
    """A search strategy over a :class:`Domain`: ``ask(n) -> ids``, ``tell(ids, values)``.

    Contract:
      * ``ask(n)`` returns between 1 and ``n`` distinct ids never returned before (the
        strategy's natural batch, capped by ``n``), or an empty array when the domain is
        exhausted or when the strategy waits for values of ids it already proposed;
      * ``tell`` accepts values (higher is better) for proposed ids, in any order;
      * every random choice comes from the ``numpy.random.Generator`` given at construction
        (torch-based strategies seed their own ``torch.Generator`` from it);
      * ``state_dict()`` is a picklable dict; a fresh searcher on the same domain that
        loads it continues exactly as the original would have.

    Writing a new searcher means implementing ``_propose`` (and, when it learns,
    ``_observe``, ``_state`` and ``_load_state``). A complete example, greedy in the
    first feature, registered under a name so ``latentnas`` can find it::

        import numpy as np
        from searchers import Domain, Searcher, register

        @register("greedy-x0")
        class GreedyX0(Searcher):
            requires = ("features",)

            def _propose(self, n):
                free = self.unvisited()
                order = np.argsort(-self.domain.features[free, 0], kind="stable")
                return free[order[:n]]

        domain = Domain(ids=np.arange(100), features=np.random.default_rng(0).normal(size=(100, 4)))
        s = GreedyX0(domain, np.random.default_rng(0))
        ids = s.ask(5)
        s.tell(ids, domain.features[ids, 0])
        assert s.best()[1] == domain.features[:, 0].max()

    A separate package can expose it without touching this one, through the
    ``latentnas.searchers`` entry-point group in its ``pyproject.toml``::

        [project.entry-points."latentnas.searchers"]
        greedy-x0 = "my_package.greedy:GreedyX0"
    """

    name: str = "searcher"
    #: domain parts the strategy needs: any of "features", "neighbours", "graphs", "choices"
    requires: tuple[str, ...] = ()
    #: the encodings the strategy runs under when a plan does not restrict it (``None``:
    #: every encoding of the plan); BANANAS's own is the path encoding
    default_encodings: tuple[str, ...] | None = None
    #: whether the strategy can learn its own encoding of ``domain.graphs`` from the values
    #: it is told when the domain has no features (the platform's "supervised" encoding)
    learns_encoding: bool = False
    #: options that count queries (initial design, population, batch): a plan refuses a
    #: value given for one that exceeds its budget, since the search could never use it
    query_options: tuple[str, ...] = ()

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Rules between options that their annotations cannot state (``options`` holds
        every option, defaults included); raises ``ValueError``. Called by
        :func:`searchers.create` before construction and by the platform when it reads a
        searcher spec, so a bad combination fails before any search starts."""

    def __init__(self, domain: Domain, rng: np.random.Generator):
        missing = [part for part in self.requires if getattr(domain, part) is None]
        if missing:
            raise SearcherError(f"searcher {self.name!r} needs domain {', '.join(missing)}; "
                                "give an encoding (features) or a space with neighbours")
        self.domain = domain
        self.rng = rng
        self.taken = np.zeros(domain.size, dtype=bool)   # proposed (pending or told)
        self.pending: list[int] = []                      # proposed, value not told yet
        self.history_pos: list[int] = []
        self.history_y: list[float] = []

    # -- the protocol -----------------------------------------------------------------
    def ask(self, n: int) -> np.ndarray:
        if n < 1:
            raise SearcherError(f"ask(n) needs n >= 1, got {n}")
        if self.taken.all():
            return np.empty(0, dtype=np.int64)
        pos = np.asarray(self._propose(int(min(n, (~self.taken).sum()))), dtype=np.int64)
        if len(pos) > n or len(np.unique(pos)) != len(pos) or self.taken[pos].any():
            raise RuntimeError(f"searcher {self.name!r} proposed repeated or already "
                               f"proposed candidates: {pos.tolist()}")
        self.taken[pos] = True
        self.pending.extend(int(p) for p in pos)
        return self.domain.ids[pos]

    def tell(self, ids: Sequence[int], values: Sequence[float]) -> None:
        pos = self.domain.positions(ids)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(values) != len(pos):
            raise SearcherError(f"tell got {len(pos)} ids but {len(values)} values")
        if not np.isfinite(values).all():
            raise SearcherError(f"tell got non-finite values: {values.tolist()}")
        waiting = set(self.pending)
        for p in pos:
            if int(p) not in waiting:
                raise SearcherError(f"id {int(self.domain.ids[p])} was not proposed by ask() "
                                    "or was already told")
            waiting.discard(int(p))
        self.pending = [p for p in self.pending if p in waiting]
        self.history_pos.extend(int(p) for p in pos)
        self.history_y.extend(float(v) for v in values)
        self._observe(pos, values)

    def best(self) -> tuple[int, float]:
        """``(id, value)`` of the best evaluated candidate."""
        if not self.history_y:
            raise SearcherError("no values told yet")
        k = int(np.argmax(self.history_y))
        return int(self.domain.ids[self.history_pos[k]]), self.history_y[k]

    @property
    def num_told(self) -> int:
        return len(self.history_y)

    def stats(self) -> dict:
        """Counts a strategy reports about its search (stored with the search's header),
        e.g. how often a wrapped library re-suggested a cell; empty by default."""
        return {}

    # -- state ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"searcher": self.name, "domain_size": self.domain.size,
                "rng": self.rng.bit_generator.state, "pending": list(self.pending),
                "history_pos": list(self.history_pos), "history_y": list(self.history_y),
                "strategy": copy.deepcopy(self._state())}

    def load_state_dict(self, state: dict) -> None:
        if state.get("searcher") != self.name or state.get("domain_size") != self.domain.size:
            raise SearcherError(
                f"state of searcher {state.get('searcher')!r} on {state.get('domain_size')} "
                f"candidates cannot be loaded into {self.name!r} on {self.domain.size}")
        self.rng.bit_generator.state = state["rng"]
        self.pending = list(state["pending"])
        self.history_pos = list(state["history_pos"])
        self.history_y = list(state["history_y"])
        self.taken[:] = False
        self.taken[self.history_pos + self.pending] = True
        self._load_state(copy.deepcopy(state["strategy"]))

    # -- for strategies ---------------------------------------------------------------
    @abstractmethod
    def _propose(self, n: int) -> Sequence[int]:
        """Up to ``n`` (>= 1) distinct positions not in ``self.taken``."""

    def _observe(self, pos: np.ndarray, values: np.ndarray) -> None:
        """Learns from newly told values (positions ``pos``)."""

    def _state(self) -> dict:
        return {}

    def _load_state(self, state: dict) -> None:
        pass

    def start_round(self, n: int, init: int) -> list[int] | None:
        """For model-based strategies that propose in rounds after a random start: random
        unvisited positions while fewer than ``init`` were proposed, ``[]`` while a
        round's values are still pending, ``None`` when the model may propose."""
        seeding = init - self.num_told - len(self.pending)
        if seeding > 0:
            return list(self.random_unvisited(min(n, seeding)))
        if self.pending:
            return []                     # a round is being evaluated
        return None

    def unvisited(self) -> np.ndarray:
        """Positions not yet proposed, ascending."""
        return np.flatnonzero(~self.taken)

    def random_unvisited(self, n: int) -> np.ndarray:
        free = self.unvisited()
        return self.rng.choice(free, size=min(n, len(free)), replace=False)

    def nearest_unvisited(self, point: np.ndarray, exclude: Sequence[int] = ()) -> int:
        """The unproposed position whose feature vector is closest (L2) to ``point``."""
        blocked = self.taken.copy()
        blocked[np.asarray(exclude, dtype=np.int64)] = True
        if self.domain.nearest is not None:
            return int(self.domain.nearest(np.asarray(point, dtype=np.float32), blocked))
        dist = ((self.domain.features - point) ** 2).sum(axis=1)
        dist[blocked] = np.inf
        return int(np.argmin(dist))
