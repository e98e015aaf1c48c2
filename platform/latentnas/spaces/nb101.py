"""NAS-Bench-101: cells of at most 7 nodes and 9 edges over 3 operations.

Validity follows the official ``ModelSpec`` rules: an upper-triangular matrix, ``input``
first and ``output`` last, middle ops from conv3x3-bn-relu / conv1x1-bn-relu /
maxpool3x3; nodes not on an input->output path are pruned, a cell whose input cannot
reach its output is invalid, and the *pruned* cell has at most 9 edges. The canonical
hash is the official ``hash_module`` fingerprint of the pruned cell (iterated MD5 of
in/out degrees and labels), so hashes line up with the keys of the official tfrecord.

Tensors are padded to 7 nodes with all-zero rows after the output node; the one-hot
vocabulary is ``input, conv1x1-bn-relu, conv3x3-bn-relu, maxpool3x3, output``.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from latentnas.errors import CellParseError, short
from latentnas.spaces.base import Cell, SearchSpace, parse_json_cell, structural_problem

CONV3X3, CONV1X1, MAXPOOL3X3 = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
#: the official label order used by ``hash_module``
HASH_OPS = (CONV3X3, CONV1X1, MAXPOOL3X3)
VOCABULARY = ("input", CONV1X1, CONV3X3, MAXPOOL3X3, "output")
MAX_NODES, MAX_EDGES = 7, 9


def hash_module(matrix: np.ndarray, labeling: list[int]) -> str:
    """The official NAS-Bench-101 graph fingerprint of ``matrix`` with integer labels."""
    n = len(labeling)
    in_edges = matrix.sum(axis=0).tolist()
    out_edges = matrix.sum(axis=1).tolist()
    hashes = [hashlib.md5(str(h).encode("utf-8")).hexdigest()
              for h in zip(out_edges, in_edges, labeling)]
    preds = [np.flatnonzero(matrix[:, v]).tolist() for v in range(n)]
    succs = [np.flatnonzero(matrix[v]).tolist() for v in range(n)]
    for _ in range(n):
        hashes = [
            hashlib.md5(("".join(sorted(hashes[w] for w in preds[v])) + "|"
                         + "".join(sorted(hashes[w] for w in succs[v])) + "|"
                         + hashes[v]).encode("utf-8")).hexdigest()
            for v in range(n)
        ]
    return hashlib.md5(str(sorted(hashes)).encode("utf-8")).hexdigest()


def prune(cell: Cell) -> Cell | None:
    """Drops nodes not on an input->output path; ``None`` if input cannot reach output."""
    adj = cell.adjacency()
    n = cell.num_nodes
    forward, frontier = {0}, [0]
    while frontier:
        v = frontier.pop()
        for w in np.flatnonzero(adj[v]):
            if int(w) not in forward:
                forward.add(int(w))
                frontier.append(int(w))
    backward, frontier = {n - 1}, [n - 1]
    while frontier:
        v = frontier.pop()
        for w in np.flatnonzero(adj[:, v]):
            if int(w) not in backward:
                backward.add(int(w))
                frontier.append(int(w))
    keep = sorted(forward & backward)
    if n - 1 not in forward:
        return None
    if len(keep) == n:
        return cell
    return Cell.make(adj[np.ix_(keep, keep)], [cell.ops[k] for k in keep])


class NB101Space(SearchSpace):
    """The NAS-Bench-101 cell space (423,624 unique cells; sampled here, not enumerated).

    Example:
        >>> s = NB101Space()
        >>> c = s.parse('{"matrix": [[0,1,1],[0,0,1],[0,0,0]], '
        ...             '"ops": ["input", "conv3x3-bn-relu", "output"]}')
        >>> s.is_valid(c)
        (True, '')
    """

    name = "nb101"
    ops = VOCABULARY
    num_nodes = MAX_NODES

    def problem(self, cell: Cell) -> str | None:
        reason = structural_problem(cell, VOCABULARY, MAX_NODES)
        if reason:
            return reason
        if cell.num_nodes < 2:
            return "a cell needs at least an input and an output node"
        if cell.ops[0] != "input" or cell.ops[-1] != "output":
            return "the first op must be 'input' and the last 'output'"
        middle = cell.ops[1:-1]
        if "input" in middle or "output" in middle:
            return f"middle nodes must be one of {', '.join(HASH_OPS)}"
        pruned = prune(cell)
        if pruned is None:
            return "the input is not connected to the output (disconnected graph)"
        if pruned.num_edges > MAX_EDGES:
            return f"{pruned.num_edges} edges after pruning, more than {MAX_EDGES}"
        return None

    def canonical(self, cell: Cell) -> Cell:
        """The pruned form of a valid cell (what the official API stores and hashes)."""
        self.validate(cell)
        return prune(cell)

    def canonical_hash(self, cell: Cell) -> str:
        pruned = self.canonical(cell)
        labels = [-1] + [HASH_OPS.index(o) for o in pruned.ops[1:-1]] + [-2]
        return hash_module(pruned.adjacency(), labels)

    def _parse(self, text: str) -> Cell:
        """JSON ``{"matrix": [[...]], "ops": [...]}`` (op names as in the official API)."""
        cell = parse_json_cell(text.strip())
        if cell is None:
            raise CellParseError(
                f"cannot read {short(text)} as a NB101 cell; give JSON "
                '{"matrix": [[0,1],[0,0]], "ops": ["input", "output"]}')
        return self.validate(cell)

    def format(self, cell: Cell) -> str:
        return self.canonical(cell).to_json()

    def sample(self, rng: np.random.Generator, n: int) -> list[Cell]:
        """Random valid cells with no prunable node.

        A node count (7 for 85 % of draws, as most NB101 cells have 7 nodes, else 3..6),
        an edge count, then edges and ops uniformly; a draw is kept when every node is on
        an input->output path (no zero row but the output's, no zero column but the
        input's). The exact uniform law over the 423,624 cells needs the enumeration.
        """
        return [self._sample_one(rng) for _ in range(n)]

    @staticmethod
    def _sample_one(rng: np.random.Generator) -> Cell:
        m = MAX_NODES if rng.random() < 0.85 else int(rng.integers(3, MAX_NODES))
        iu = np.triu_indices(m, 1)
        while True:
            k = int(rng.integers(m - 1, min(MAX_EDGES, len(iu[0])) + 1))
            adj = np.zeros((m, m), dtype=np.int8)
            pick = rng.choice(len(iu[0]), size=k, replace=False)
            adj[iu[0][pick], iu[1][pick]] = 1
            if adj[:-1].any(axis=1).all() and adj[:, 1:].any(axis=0).all():
                ops = ["input", *(HASH_OPS[i] for i in rng.integers(0, 3, m - 2)), "output"]
                return Cell.make(adj, ops)

    def neighbours(self, cell: Cell) -> list[Cell]:
        """Cells one op change or one edge flip away (on the 7-node padded form)."""
        base = self.canonical(cell)
        own = self.canonical_hash(base)
        seen, out = {own}, []
        adj = np.zeros((MAX_NODES, MAX_NODES), dtype=np.int8)
        m = base.num_nodes
        # grow to 7 nodes by inserting unused nodes before the output, so edge flips can
        # also add a node to the cell
        keep = list(range(m - 1)) + [MAX_NODES - 1]
        adj[np.ix_(keep, keep)] = base.adjacency()
        ops = list(base.ops[:-1]) + [CONV3X3] * (MAX_NODES - m) + ["output"]
        candidates = []
        for i in range(1, MAX_NODES - 1):
            for op in HASH_OPS:
                if op != ops[i]:
                    candidates.append(Cell.make(adj, ops[:i] + [op] + ops[i + 1:]))
        for i, j in zip(*np.triu_indices(MAX_NODES, 1)):
            flipped = adj.copy()
            flipped[i, j] ^= 1
            candidates.append(Cell.make(flipped, ops))
        for cand in candidates:
            if self.problem(cand) is None:
                h = self.canonical_hash(cand)
                if h not in seen:
                    seen.add(h)
                    out.append(prune(cand))
        return out

    def from_arrays(self, adj: np.ndarray, op_index: np.ndarray) -> list[Cell]:
        """Hard decodings; nodes after the first decoded ``output`` are padding."""
        cells = []
        out_code = VOCABULARY.index("output")
        for a, o in zip(adj, op_index):
            hits = np.flatnonzero(o == out_code)
            m = int(hits[0]) + 1 if len(hits) else len(o)
            cells.append(Cell.make(np.triu(a[:m, :m], 1), [VOCABULARY[k] for k in o[:m]]))
        return cells


def matrix_from_string(raw: str) -> np.ndarray:
    """The official tfrecord's flattened ``'0110...'`` adjacency as a square matrix."""
    if not re.fullmatch(r"[01]+", raw):
        raise CellParseError(f"adjacency string must be 0/1 digits, got {raw[:40]!r}")
    dim = int(round(len(raw) ** 0.5))
    if dim * dim != len(raw):
        raise CellParseError(f"adjacency string of length {len(raw)} is not square")
    return np.frombuffer(raw.encode(), dtype=np.uint8).reshape(dim, dim) - ord("0")


__all__ = ["NB101Space", "hash_module", "prune", "matrix_from_string", "HASH_OPS"]
