"""Cells and the search-space interface.

A cell is a directed acyclic graph whose nodes carry one operation each, stored as an
upper-triangular adjacency matrix (``matrix[i][j] == 1`` means an edge ``i -> j``, so
node order is a topological order) plus the tuple of operation names. Encoders see a
batch of cells as ``adj [B, N, N]`` and one-hot ``ops [B, N, K]`` over the space's
vocabulary.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Sequence

import numpy as np

from latentnas.errors import CellParseError, InvalidCellError, short

#: the longest cell text :meth:`SearchSpace.parse` reads (a NB101 JSON cell is ~250)
MAX_CELL_TEXT = 2_000


@dataclass(frozen=True)
class Cell:
    """An immutable cell: adjacency matrix (tuple of row tuples) and one op per node.

    Example:
        >>> c = Cell.make([[0, 1], [0, 0]], ["input", "output"])
        >>> c.num_nodes, c.num_edges
        (2, 1)
    """

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    @classmethod
    def make(cls, matrix: Sequence[Sequence[int]] | np.ndarray, ops: Sequence[str]) -> "Cell":
        """Builds a cell from any nested sequence or array, checking only its shape."""
        if isinstance(matrix, (list, tuple)) and any(
                isinstance(x, (bool, float)) for row in matrix
                if isinstance(row, (list, tuple)) for x in row):
            raise InvalidCellError(f"adjacency matrix entries must be the integers 0 or 1, "
                                   f"got {short(matrix)}")
        try:
            arr = np.asarray(matrix, dtype=np.int64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidCellError(f"adjacency matrix is not numeric: {short(matrix)}") from exc
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise InvalidCellError(f"adjacency matrix must be square, got shape {arr.shape}")
        if not np.isin(arr, (0, 1)).all():
            raise InvalidCellError("adjacency matrix entries must be 0 or 1")
        ops = tuple(str(o) for o in ops)
        if len(ops) != arr.shape[0]:
            raise InvalidCellError(
                f"{len(ops)} ops for a {arr.shape[0]}-node matrix; give exactly one op per node"
            )
        return cls(tuple(tuple(int(v) for v in row) for row in arr), ops)

    @property
    def num_nodes(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))

    def adjacency(self) -> np.ndarray:
        """The adjacency matrix as a fresh ``int8`` array ``[N, N]``."""
        return np.array(self.matrix, dtype=np.int8).reshape(self.num_nodes, self.num_nodes)

    def edges(self) -> list[tuple[int, int]]:
        return [(i, j) for i, row in enumerate(self.matrix) for j, v in enumerate(row) if v]

    def relabel(self, order: Sequence[int]) -> "Cell":
        """The same graph with node ``order[k]`` moved to position ``k``."""
        adj = self.adjacency()[np.ix_(order, order)]
        return Cell.make(adj, [self.ops[k] for k in order])

    def to_json(self) -> str:
        return json.dumps({"matrix": [list(r) for r in self.matrix], "ops": list(self.ops)})


def structural_problem(cell: Cell, vocabulary: Sequence[str], max_nodes: int) -> str | None:
    """Problems every space shares: size, unknown ops, cycles, edges against node order."""
    if cell.num_nodes > max_nodes:
        return f"{cell.num_nodes} nodes, more than the space's {max_nodes}"
    unknown = [o for o in cell.ops if o not in vocabulary]
    if unknown:
        return f"unknown op {unknown[0]!r}; known ops: {', '.join(vocabulary)}"
    adj = cell.adjacency()
    if np.trace(adj):
        node = int(np.flatnonzero(np.diag(adj))[0])
        return f"self-loop on node {node}"
    lower = np.argwhere(np.tril(adj, -1))
    if len(lower):
        if _has_cycle(adj):
            return "the graph contains a cycle; cells must be acyclic"
        i, j = lower[0]
        return (f"edge {i}->{j} points backwards (lower triangle); number nodes in "
                f"topological order so every edge goes from a lower to a higher index")
    return None


def _has_cycle(adj: np.ndarray) -> bool:
    indeg = adj.sum(axis=0).astype(int)
    stack = [v for v in range(len(adj)) if indeg[v] == 0]
    seen = 0
    while stack:
        v = stack.pop()
        seen += 1
        for w in np.flatnonzero(adj[v]):
            indeg[w] -= 1
            if indeg[w] == 0:
                stack.append(int(w))
    return seen < len(adj)


def random_topological_order(cell: Cell, rng: np.random.Generator) -> list[int]:
    """A uniformly chosen topological order of the cell's nodes (for relabelling tests)."""
    adj = cell.adjacency()
    indeg = adj.sum(axis=0).astype(int)
    ready = [v for v in range(cell.num_nodes) if indeg[v] == 0]
    order: list[int] = []
    while ready:
        v = ready.pop(int(rng.integers(len(ready))))
        order.append(v)
        for w in np.flatnonzero(adj[v]):
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(int(w))
    return order


def parse_json_cell(text: str) -> Cell | None:
    """Reads ``{"matrix": [[...]], "ops": [...]}``; ``None`` when the text is not JSON."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or "matrix" not in obj or "ops" not in obj:
        raise CellParseError(f'JSON cell needs keys "matrix" and "ops", got {short(text)}')
    if not isinstance(obj["ops"], list):
        raise CellParseError(f'"ops" of a JSON cell must be a list of op names, got '
                             f'{short(obj["ops"])}')
    return Cell.make(obj["matrix"], obj["ops"])


class SearchSpace(ABC):
    """A space of cells: vocabulary, validity, canonical hash, sampling, tensors.

    Finite spaces also enumerate their cells; a cell's *id* is its position in
    :meth:`cells`, stable across processes, and the id is what oracles and searchers use.
    """

    name: str
    #: operation vocabulary, in the column order of the one-hot ``ops`` tensor
    ops: tuple[str, ...]
    #: node count of the tensors (cells with fewer nodes are zero-padded)
    num_nodes: int
    #: ops whose nodes compute nothing, and ops that pass their input on unchanged (a
    #: graph pruned to what the cell computes drops the first and bypasses the second)
    empty_ops: tuple[str, ...] = ()
    identity_ops: tuple[str, ...] = ()

    # -- validity ---------------------------------------------------------------------
    @abstractmethod
    def problem(self, cell: Cell) -> str | None:
        """Why ``cell`` is not in this space, or ``None`` when it is."""

    def is_valid(self, cell: Cell) -> tuple[bool, str]:
        """``(True, "")`` for a valid cell, else ``(False, reason)``."""
        reason = self.problem(cell)
        return (reason is None, reason or "")

    def validate(self, cell: Cell) -> Cell:
        """Returns the cell, or raises :class:`InvalidCellError` naming the problem."""
        reason = self.problem(cell)
        if reason is not None:
            raise InvalidCellError(f"invalid {self.name} cell: {reason}")
        return cell

    # -- identity ---------------------------------------------------------------------
    @abstractmethod
    def canonical_hash(self, cell: Cell) -> str:
        """A string equal for isomorphic cells and different for non-isomorphic ones."""

    def parse(self, text: str) -> Cell:
        """Reads a cell from the space's usual textual forms (see each space's ``_parse``),
        in time linear in the text, which may be at most :data:`MAX_CELL_TEXT` long."""
        if not isinstance(text, str):
            raise CellParseError(f"a cell is given as text, got {short(text)}")
        if len(text) > MAX_CELL_TEXT:
            raise CellParseError(f"cell text of {len(text):,} characters is longer than "
                                 f"{MAX_CELL_TEXT:,}; a {self.name} cell is written in a few "
                                 f"hundred (starts {short(text[:40])})")
        return self._parse(text)

    @abstractmethod
    def _parse(self, text: str) -> Cell:
        """Reads a cell from text at most :data:`MAX_CELL_TEXT` long."""

    @abstractmethod
    def format(self, cell: Cell) -> str:
        """The space's usual textual form of a cell (accepted back by :meth:`parse`)."""

    # -- moves ------------------------------------------------------------------------
    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> list[Cell]:
        """``n`` valid cells drawn at random (with replacement)."""

    @abstractmethod
    def neighbours(self, cell: Cell) -> list[Cell]:
        """Valid, pairwise non-isomorphic cells one edit (op or edge) away."""

    # -- tensors ----------------------------------------------------------------------
    def to_arrays(self, cells: Sequence[Cell]) -> tuple[np.ndarray, np.ndarray]:
        """``(adj uint8 [B, N, N], ops float32 [B, N, K])``; smaller cells zero-padded."""
        b, n, k = len(cells), self.num_nodes, len(self.ops)
        adj = np.zeros((b, n, n), dtype=np.uint8)
        ops = np.zeros((b, n, k), dtype=np.float32)
        index = {o: i for i, o in enumerate(self.ops)}
        for row, cell in enumerate(cells):
            m = cell.num_nodes
            adj[row, :m, :m] = cell.matrix
            ops[row, np.arange(m), [index[o] for o in cell.ops]] = 1.0
        return adj, ops

    def to_tensors(self, cells: Sequence[Cell], device: "str | None" = None):
        """Torch tensors ``(adj [B, N, N], ops [B, N, K])``, float32, on ``device``."""
        import torch

        adj, ops = self.to_arrays(cells)
        return (torch.as_tensor(adj, dtype=torch.float32, device=device),
                torch.as_tensor(ops, device=device))

    def from_arrays(self, adj: np.ndarray, op_index: np.ndarray) -> list[Cell]:
        """Cells from hard decodings: ``adj`` 0/1 ``[B, N, N]``, ``op_index`` ints ``[B, N]``.

        The result may be invalid; judge it with :meth:`problem`.
        """
        vocab = np.asarray(self.ops, dtype=object)
        return [Cell.make(np.triu(a, 1), vocab[o]) for a, o in zip(adj, op_index)]

    # -- finite spaces ----------------------------------------------------------------
    @property
    def size(self) -> int | None:
        """Number of cells, or ``None`` for spaces that are only sampled."""
        return None

    def cells(self) -> Sequence[Cell]:
        raise NotImplementedError(f"space {self.name!r} is not enumerable; use sample()")

    def index(self, cell: Cell) -> int:
        """The id of ``cell`` (any labelling) in :meth:`cells`."""
        raise NotImplementedError(f"space {self.name!r} is not enumerable")

    def __len__(self) -> int:
        if self.size is None:
            raise TypeError(f"space {self.name!r} has no finite size")
        return self.size

    def __iter__(self) -> Iterator[Cell]:
        return iter(self.cells())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} size={self.size}>"


class FiniteSpace(SearchSpace):
    """A space whose cells are enumerated once and addressed by id."""

    @abstractmethod
    def _enumerate(self) -> list[Cell]:
        """All cells, in id order."""

    @cached_property
    def _cells(self) -> list[Cell]:
        return self._enumerate()

    @cached_property
    def _ids(self) -> dict[str, int]:
        return {self.canonical_hash(c): i for i, c in enumerate(self._cells)}

    @property
    def size(self) -> int:
        return len(self._cells)

    def cells(self) -> Sequence[Cell]:
        return self._cells

    def hashes(self) -> list[str]:
        """``canonical_hash`` of every cell, in id order."""
        return sorted(self._ids, key=self._ids.get)

    def index(self, cell: Cell) -> int:
        self.validate(cell)
        try:
            return self._ids[self.canonical_hash(cell)]
        except KeyError:
            raise InvalidCellError(
                f"cell {self.format(cell)} is valid but not among the {self.size} cells of "
                f"{self.name}") from None

    def sample(self, rng: np.random.Generator, n: int) -> list[Cell]:
        return [self._cells[i] for i in rng.integers(0, self.size, size=n)]

    # -- the cells as categorical choices (adapters of general-purpose optimizers) ----
    def choice_columns(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """``(name, categories)`` of each discrete choice that makes a cell."""
        raise NotImplementedError(f"space {self.name} has no categorical form")

    def to_choices(self, cell_id: int) -> tuple[int, ...]:
        """One category index per :meth:`choice_columns` entry, for cell ``cell_id``."""
        raise NotImplementedError(f"space {self.name} has no categorical form")

    def from_choices(self, codes) -> int | None:
        """The id of the cell ``codes`` make, or ``None`` when they make no cell here."""
        raise NotImplementedError(f"space {self.name} has no categorical form")

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``to_arrays`` of every cell, computed once."""
        cached = self.__dict__.get("_arrays")
        if cached is None:
            cached = self.__dict__["_arrays"] = self.to_arrays(self._cells)
        return cached
