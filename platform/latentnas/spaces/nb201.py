"""NAS-Bench-201: a 4-node cell whose 6 edges each carry one of 5 operations (15,625 cells).

Three forms of the same cell round-trip here:

* the official arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edge ops grouped by
  target node; ``~k`` is the source node);
* the AnalogNAS-Bench 6-tuple: ops on edges 0->1, 0->2, 0->3, 1->2, 1->3, 2->3 coded
  0=skip_connect, 1=none, 2=nor_conv_3x3, 3=nor_conv_1x1, 4=avg_pool_3x3;
* the node graph arch2vec encodes: every edge becomes a node, giving 8 nodes
  ``input, e01, e02, e12, e03, e13, e23, output`` (the arch string's order) on a fixed
  skeleton, with vocabulary ``input, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3,
  skip_connect, none, output``.

A cell's id is the 6-tuple read as a base-5 number, so id 0 is all skip connections.
"""

from __future__ import annotations

import itertools
import re
from typing import Sequence

import numpy as np

from latentnas.errors import CellParseError, short
from latentnas.spaces.base import Cell, FiniteSpace, parse_json_cell, structural_problem

EDGE_OPS = ("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "none")
VOCABULARY = ("input",) + EDGE_OPS + ("output",)
#: AnalogNAS-Bench op codes
TUPLE_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
#: (source, target) of the cell edge behind each middle node of the node graph,
#: in arch-string order
NODE_EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: position in the AnalogNAS 6-tuple (edges 0->1, 0->2, 0->3, 1->2, 1->3, 2->3) of each
#: node-graph middle node
_TUPLE_POS = (0, 1, 3, 2, 4, 5)

SKELETON = np.array([
    [0, 1, 1, 0, 1, 0, 0, 0],
    [0, 0, 0, 1, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0, 0],
], dtype=np.int8)
_SKELETON_ROWS = tuple(tuple(int(v) for v in r) for r in SKELETON)


class NB201Space(FiniteSpace):
    """NAS-Bench-201 as arch2vec's 8-node graph. See the module docstring for the forms.

    Example:
        >>> s = NB201Space()
        >>> c = s.from_tuple((2, 2, 0, 2, 3, 2))
        >>> s.format(c)
        '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|'
    """

    name = "nb201"
    ops = VOCABULARY
    num_nodes = 8
    empty_ops = ("none",)
    identity_ops = ("skip_connect",)

    # -- forms ------------------------------------------------------------------------
    @staticmethod
    def from_edge_ops(edge_ops: Sequence[str]) -> Cell:
        """Cell from the 6 edge ops in arch-string order (e01, e02, e12, e03, e13, e23)."""
        return Cell(_SKELETON_ROWS, ("input", *edge_ops, "output"))

    def from_tuple(self, codes: Sequence[int]) -> Cell:
        """Cell from an AnalogNAS-Bench 6-tuple."""
        codes = tuple(int(c) for c in codes)
        if len(codes) != 6 or not all(0 <= c < 5 for c in codes):
            raise CellParseError(
                f"NB201 tuple must be 6 codes in 0..4 (0=skip_connect, 1=none, 2=nor_conv_3x3, "
                f"3=nor_conv_1x1, 4=avg_pool_3x3), got {codes!r}")
        return self.from_edge_ops([TUPLE_OPS[codes[p]] for p in _TUPLE_POS])

    def to_tuple(self, cell: Cell) -> tuple[int, ...]:
        """AnalogNAS-Bench 6-tuple of a valid cell."""
        edge_ops = self._canonical_edge_ops(cell)
        out = [0] * 6
        for node, pos in enumerate(_TUPLE_POS):
            out[pos] = TUPLE_OPS.index(edge_ops[node])
        return tuple(out)

    def from_arch_string(self, text: str) -> Cell:
        text = text.strip()
        groups = text[1:-1].split("|+|") if len(text) > 1 else []
        if not (text.startswith("|") and text.endswith("|")) or len(groups) != 3:
            raise CellParseError(
                f"not a NAS-Bench-201 arch string: {short(text)}; expected "
                "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'")
        edge_ops = []
        for target, group in enumerate(groups, start=1):
            parts = group.split("|")
            if len(parts) != target:
                raise CellParseError(f"node {target} needs {target} inputs in {short(text)}")
            for source, part in enumerate(parts):
                op, _, src = part.partition("~")
                if src != str(source):
                    raise CellParseError(f"expected '~{source}' in {short(part)} of "
                                         f"{short(text)}")
                if op not in EDGE_OPS:
                    raise CellParseError(
                        f"unknown NB201 op {short(op)}; known ops: {', '.join(EDGE_OPS)}")
                edge_ops.append(op)
        return self.from_edge_ops(edge_ops)

    def format(self, cell: Cell) -> str:
        e = self._canonical_edge_ops(cell)
        return f"|{e[0]}~0|+|{e[1]}~0|{e[2]}~1|+|{e[3]}~0|{e[4]}~1|{e[5]}~2|"

    def _parse(self, text: str) -> Cell:
        """Arch string, 6-tuple (``2,2,0,2,3,2`` or ``(2, 2, 0, 2, 3, 2)``) or JSON cell."""
        text = text.strip()
        if text.startswith("|"):
            return self.from_arch_string(text)
        cell = parse_json_cell(text) if text.startswith("{") else None
        if cell is not None:
            return self.validate(cell)
        digits = re.findall(r"-?\d+", text)
        if len(digits) == 6 and re.fullmatch(r"[\s\d,()\[\]-]+", text):
            return self.from_tuple([int(d) for d in digits])
        raise CellParseError(
            f"cannot read {short(text)} as a NB201 cell; give an arch string "
            "'|nor_conv_3x3~0|+|...|', a 6-tuple '2,2,0,2,3,2' or JSON {\"matrix\", \"ops\"}")

    # -- validity and identity --------------------------------------------------------
    def _roles(self, cell: Cell) -> list[int] | None:
        """Node indices of (input, e01, e02, e12, e03, e13, e23, output), or None.

        Works for any topological labelling, so hashing is relabelling-invariant.
        """
        if cell.num_nodes != 8 or cell.ops.count("input") != 1 or cell.ops.count("output") != 1:
            return None
        adj = cell.adjacency()
        succ = [set(np.flatnonzero(adj[v]).tolist()) for v in range(8)]
        i, o = cell.ops.index("input"), cell.ops.index("output")
        first = succ[i]
        e03 = [v for v in first if succ[v] == {o}]
        e01 = [v for v in first if len(succ[v]) == 2]
        e02 = [v for v in first if len(succ[v]) == 1 and o not in succ[v]]
        if not (len(first) == 3 and len(e03) == len(e01) == len(e02) == 1):
            return None
        (e03,), (e01,), (e02,) = e03, e01, e02
        e13 = [v for v in succ[e01] if succ[v] == {o}]
        e12 = [v for v in succ[e01] if succ[v] != {o}]
        if len(e13) != 1 or len(e12) != 1 or len(succ[e02]) != 1:
            return None
        roles = [i, e01, e02, e12[0], e03, e13[0], next(iter(succ[e02])), o]
        if len(set(roles)) != 8 or not np.array_equal(adj[np.ix_(roles, roles)], SKELETON):
            return None
        return roles

    def problem(self, cell: Cell) -> str | None:
        reason = structural_problem(cell, VOCABULARY, 8)
        if reason:
            return reason
        roles = self._roles(cell)
        if roles is None:
            return ("the graph is not the NAS-Bench-201 skeleton (input, 6 edge-op nodes, "
                    "output wired as the 4-node cell's edges)")
        if any(cell.ops[r] not in EDGE_OPS for r in roles[1:-1]):
            return f"edge-op nodes must carry one of {', '.join(EDGE_OPS)}"
        return None

    def _canonical_edge_ops(self, cell: Cell) -> tuple[str, ...]:
        self.validate(cell)
        if cell.matrix == _SKELETON_ROWS:
            return cell.ops[1:-1]
        roles = self._roles(cell)
        return tuple(cell.ops[r] for r in roles[1:-1])

    def canonical_hash(self, cell: Cell) -> str:
        # The skeleton has no automorphism, so the edge ops in canonical order identify
        # the isomorphism class exactly.
        return self.format(cell)

    def index(self, cell: Cell) -> int:
        value = 0
        for c in self.to_tuple(cell):
            value = value * 5 + c
        return value

    # -- enumeration and moves --------------------------------------------------------
    def _enumerate(self) -> list[Cell]:
        return [self.from_tuple(t) for t in itertools.product(range(5), repeat=6)]

    def choice_columns(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The op on each of the 6 edges, in AnalogNAS-Bench tuple order."""
        return tuple((f"{a}->{b}", TUPLE_OPS)
                     for a, b in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)))

    def to_choices(self, cell_id: int) -> tuple[int, ...]:
        # the id is the tuple read as a base-5 number
        return tuple(int(c) for c in np.base_repr(int(cell_id), 5).zfill(6))

    def from_choices(self, codes) -> int | None:
        value = 0
        for c in codes:
            value = value * 5 + int(c)
        return value

    def neighbours(self, cell: Cell) -> list[Cell]:
        edge_ops = self._canonical_edge_ops(cell)
        out = []
        for pos, current in enumerate(edge_ops):
            for op in EDGE_OPS:
                if op != current:
                    out.append(self.from_edge_ops(edge_ops[:pos] + (op,) + edge_ops[pos + 1:]))
        return out

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        cached = self.__dict__.get("_arrays")
        if cached is None:
            # every cell shares the skeleton, so build the one-hot table directly
            idx = np.array([[VOCABULARY.index(o) for o in c.ops] for c in self.cells()])
            ops = np.eye(len(VOCABULARY), dtype=np.float32)[idx]
            adj = np.broadcast_to(SKELETON.astype(np.uint8), (len(idx), 8, 8)).copy()
            cached = self.__dict__["_arrays"] = (adj, ops)
        return cached
