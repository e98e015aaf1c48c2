"""NAS-Bench-Graph: GNN cells of 4 op nodes, each fed by one earlier node.

An architecture is a *link* list (``link[i]`` is the input of op node ``i+1``; 0 is the
cell input) and 4 ops from 9 GNN layers (proteins: a 5-op subset). As a graph it has 6
nodes ``input, op1..op4, output``; every op node no other node reads feeds the output.
Identity is the benchmark package's own ``Arch.valid_hash`` (which also folds ``skip``
nodes), so ids line up with its tables: the 9 canonical link patterns give 26,206
architectures over 9 ops and 2,021 over the proteins subset (all-skip cells excluded).
"""

from __future__ import annotations

import itertools
import json
import re
from functools import cached_property

import numpy as np

from latentnas.errors import CellParseError, short
from latentnas.spaces.base import Cell, FiniteSpace, parse_json_cell, structural_problem

GNN_OPS = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
PROTEINS_OPS = ("gcn", "sage", "arma", "fc", "skip")
#: canonical link patterns of the benchmark
LINK_PATTERNS = ((0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1), (0, 0, 1, 2), (0, 0, 1, 3),
                 (0, 1, 1, 1), (0, 1, 1, 2), (0, 1, 2, 2), (0, 1, 2, 3))


def cell_from_links(link, ops) -> Cell:
    """The 6-node graph of a (link, ops) architecture."""
    adj = np.zeros((6, 6), dtype=np.int8)
    for i, src in enumerate(link):
        adj[src, i + 1] = 1
    for i in range(4):
        if i + 1 not in link:
            adj[i + 1, 5] = 1
    return Cell.make(adj, ("input", *ops, "output"))


class NBGraphSpace(FiniteSpace):
    """NAS-Bench-Graph architectures as 6-node cells.

    ``proteins=True`` restricts ops to the subset the proteins table was built on.

    Example:
        >>> s = NBGraphSpace()
        >>> c = s.parse("0,1,2,3|gcn,gin,skip,sage")
        >>> s.format(c)
        '0,1,2,3|gcn,gin,skip,sage'
    """

    num_nodes = 6

    def __init__(self, proteins: bool = False):
        self.proteins = proteins
        self.layer_ops = PROTEINS_OPS if proteins else GNN_OPS
        self.name = "nbgraph-proteins" if proteins else "nbgraph"
        # the tensor vocabulary is the same for both, so one encoder serves every dataset
        self.ops = ("input", *GNN_OPS, "output")

    # -- forms ------------------------------------------------------------------------
    def links(self, cell: Cell) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """``(link, ops)`` of a valid cell, in the cell's own node order."""
        self.validate(cell)
        return self._links(cell)

    @staticmethod
    def _links(cell: Cell) -> tuple[tuple[int, ...], tuple[str, ...]]:
        adj = cell.adjacency()
        order = [v for v in range(cell.num_nodes) if cell.ops[v] not in ("input", "output")]
        pos = {cell.ops.index("input"): 0, **{v: k + 1 for k, v in enumerate(order)}}
        link = tuple(pos[int(np.flatnonzero(adj[:, v])[0])] for v in order)
        return link, tuple(cell.ops[v] for v in order)

    def _parse(self, text: str) -> Cell:
        """``"0,1,2,3|gcn,gin,skip,sage"``, JSON ``{"links", "ops"}`` or JSON cell."""
        text = text.strip()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CellParseError(f"cannot read {short(text)} as JSON: {exc}") from None
            if isinstance(obj, dict) and "links" in obj:
                if not isinstance(obj["links"], list) or not isinstance(obj.get("ops", []), list):
                    raise CellParseError(f'"links" and "ops" must be lists in {short(text)}')
                return self.validate(self._from_parts(obj["links"], obj.get("ops", [])))
            return self.validate(parse_json_cell(text))
        left, bar, right = text.partition("|")
        links = left.strip().strip("[]()").replace(" ", "")
        if not bar or not re.fullmatch(r"[\d,]+", links) or not re.fullmatch(r"[\w,\s]+", right):
            raise CellParseError(
                f"cannot read {short(text)} as a NAS-Bench-Graph cell; give 'links|ops' such "
                "as '0,1,2,3|gcn,gin,skip,sage' or JSON {\"links\": [...], \"ops\": [...]}")
        link = [int(x) for x in links.split(",") if x]
        ops = [x.strip() for x in right.split(",") if x.strip()]
        return self.validate(self._from_parts(link, ops))

    def _from_parts(self, link, ops) -> Cell:
        link, ops = list(link), list(ops)
        if len(link) != 4 or len(ops) != 4:
            raise CellParseError(f"need 4 links and 4 ops, got links={short(link)} "
                                 f"ops={short(ops)}")
        bad = [o for o in ops if o not in self.layer_ops]
        if bad:
            raise CellParseError(
                f"unknown {self.name} op {short(bad[0])}; known ops: {', '.join(self.layer_ops)}")
        kinds = [s for s in link if isinstance(s, bool) or not isinstance(s, int)]
        if kinds:
            raise CellParseError(f"link {short(kinds[0])} in {short(link)} is not a node "
                                 "number; links are whole numbers such as 0,1,2,3")
        if any(not 0 <= s <= i for i, s in enumerate(link)):
            raise CellParseError(
                f"link {link}: node i+1 must read an earlier node (0..i), e.g. 0,1,2,3")
        return cell_from_links(link, ops)

    def format(self, cell: Cell) -> str:
        link, ops = self.links(cell)
        return f"{','.join(map(str, link))}|{','.join(ops)}"

    # -- validity and identity --------------------------------------------------------
    def problem(self, cell: Cell) -> str | None:
        reason = structural_problem(cell, self.ops, 6)
        if reason:
            return reason
        if cell.num_nodes != 6 or cell.ops.count("input") != 1 or cell.ops.count("output") != 1:
            return "a NAS-Bench-Graph cell has 6 nodes: one input, 4 GNN layers, one output"
        bad = [o for o in cell.ops if o not in ("input", "output") and o not in self.layer_ops]
        if bad:
            return f"op {bad[0]!r} is not in {self.name}'s ops: {', '.join(self.layer_ops)}"
        adj = cell.adjacency()
        i, o = cell.ops.index("input"), cell.ops.index("output")
        layers = [v for v in range(6) if v not in (i, o)]
        if adj[:, i].any() or adj[o].any():
            return "the input must have no incoming and the output no outgoing edges"
        if any(adj[:, v].sum() != 1 for v in layers):
            return "every GNN layer must read exactly one earlier node"
        leaves = {v for v in layers if not adj[v, layers].any()}
        if set(np.flatnonzero(adj[:, o]).tolist()) != leaves:
            return "the output must read exactly the layers no other layer reads"
        if all(cell.ops[v] == "skip" for v in layers):
            return "a cell of only skip layers is not in the benchmark"
        return None

    def valid_hash(self, cell: Cell) -> int:
        """The benchmark package's integer key of a valid cell."""
        from nas_bench_graph import Arch

        link, ops = self.links(cell)
        return Arch(list(link), list(ops)).valid_hash()

    def canonical_hash(self, cell: Cell) -> str:
        return str(self.valid_hash(cell))

    # -- enumeration and moves --------------------------------------------------------
    def _enumerate(self) -> list[Cell]:
        from nas_bench_graph import Arch

        found: dict[int, Cell] = {}
        for link in LINK_PATTERNS:
            for ops in itertools.product(self.layer_ops, repeat=4):
                if all(o == "skip" for o in ops):
                    continue
                arch = Arch(list(link), list(ops))
                if arch.check_isomorph():  # keeps one representative per class
                    found.setdefault(Arch(list(link), list(ops)).valid_hash(),
                                     cell_from_links(link, ops))
        self._hash_order = sorted(found)
        return [found[h] for h in self._hash_order]

    @cached_property
    def _ids(self) -> dict[str, int]:
        # the hashes are known from the enumeration; recomputing them costs seconds
        return {str(h): i for i, h in enumerate(self._hash_order)} if self._cells else {}

    def valid_hashes(self) -> np.ndarray:
        """``valid_hash`` of every cell, in id order."""
        self.cells()
        return np.array(self._hash_order, dtype=np.int64)

    def choice_columns(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The link pattern (one of the benchmark's 9), then the op of each layer."""
        return ((("links", tuple(",".join(map(str, lk)) for lk in LINK_PATTERNS)),)
                + tuple((f"op{k}", self.layer_ops) for k in range(1, 5)))

    def to_choices(self, cell_id: int) -> tuple[int, ...]:
        link, ops = self._links(self.cells()[int(cell_id)])
        return (LINK_PATTERNS.index(link), *(self.layer_ops.index(o) for o in ops))

    def from_choices(self, codes) -> int | None:
        codes = [int(c) for c in codes]
        ops = tuple(self.layer_ops[c] for c in codes[1:])
        if all(o == "skip" for o in ops):
            return None                     # not in the benchmark
        self.cells()
        return self._ids.get(self.canonical_hash(cell_from_links(LINK_PATTERNS[codes[0]], ops)))

    def neighbours(self, cell: Cell) -> list[Cell]:
        """One op changed, or the same ops on another link pattern."""
        link, ops = self.links(cell)
        own = self.canonical_hash(cell)
        seen, out = {own}, []
        candidates = [(link, ops[:k] + (op,) + ops[k + 1:])
                      for k in range(4) for op in self.layer_ops if op != ops[k]]
        candidates += [(lk, ops) for lk in LINK_PATTERNS if lk != link]
        for lk, op in candidates:
            if all(o == "skip" for o in op):
                continue
            cand = cell_from_links(lk, op)
            h = self.canonical_hash(cand)
            if h not in seen:
                seen.add(h)
                out.append(self._cells[self._ids[h]])
        return out
