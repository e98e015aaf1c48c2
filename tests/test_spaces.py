"""Search spaces: counts, round-trips, validity rules and canonical hashes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentnas.errors import CellParseError, InvalidCellError, UnknownNameError
from latentnas.spaces import Cell, get_space
from latentnas.spaces.base import random_topological_order
from latentnas.spaces.nb201 import TUPLE_OPS

BEST_NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- NAS-Bench-201 -------------------------------------------------------------------

def test_nb201_has_15625_cells_with_distinct_hashes(nb201):
    assert len(nb201) == 15_625
    assert len({nb201.canonical_hash(c) for c in nb201.cells()}) == 15_625


def test_every_nb201_cell_round_trips_through_string_tuple_and_tensors(nb201):
    cells = nb201.cells()
    adj, ops = nb201.to_arrays(cells)
    assert adj.shape == (15_625, 8, 8) and ops.shape == (15_625, 8, 7)
    assert np.array_equal(ops.sum(-1), np.ones((15_625, 8)))
    back = nb201.from_arrays(adj, ops.argmax(-1))
    for i, (cell, decoded) in enumerate(zip(cells, back)):
        assert nb201.parse(nb201.format(cell)) == cell
        assert nb201.from_tuple(nb201.to_tuple(cell)) == cell
        assert decoded == cell
        assert nb201.index(cell) == i


def test_nb201_precomputed_arrays_match_generic_conversion(nb201):
    fast = nb201.arrays()
    slow = nb201.to_arrays(nb201.cells())
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])


def test_nb201_tuple_follows_analognas_edge_order(nb201):
    cell = nb201.parse(BEST_NB201)
    # edges 0->1, 0->2, 0->3, 1->2, 1->3, 2->3 with 0=skip 2=conv3x3 3=conv1x1
    assert nb201.to_tuple(cell) == (2, 2, 0, 2, 3, 2)
    assert nb201.parse("(2, 2, 0, 2, 3, 2)") == cell
    assert TUPLE_OPS[0] == "skip_connect" and TUPLE_OPS[4] == "avg_pool_3x3"


def test_nb201_node_graph_is_arch2vecs_8_node_form(nb201):
    cell = nb201.parse(BEST_NB201)
    assert cell.ops == ("input", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3",
                        "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "output")
    assert cell.edges() == [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6),
                            (4, 7), (5, 7), (6, 7)]


@SETTINGS
@given(idx=st.integers(0, 15_624), seed=st.integers(0, 2**32 - 1))
def test_nb201_hash_is_invariant_under_node_relabelling(nb201, idx, seed):
    cell = nb201.cells()[idx]
    order = random_topological_order(cell, np.random.default_rng(seed))
    relabelled = cell.relabel(order)
    assert nb201.is_valid(relabelled) == (True, "")
    assert nb201.canonical_hash(relabelled) == nb201.canonical_hash(cell)
    assert nb201.index(relabelled) == idx


def test_nb201_neighbours_are_24_single_edge_changes(nb201):
    cell = nb201.parse(BEST_NB201)
    nbrs = nb201.neighbours(cell)
    assert len(nbrs) == 24 and len({nb201.index(c) for c in nbrs}) == 24
    base = np.array(nb201.to_tuple(cell))
    assert all((np.array(nb201.to_tuple(c)) != base).sum() == 1 for c in nbrs)


@pytest.mark.parametrize("text, fragment", [
    ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown NB201 op 'conv'"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "needs 2 inputs"),
    ("1,2,3", "cannot read"),
    ("(9, 0, 0, 0, 0, 0)", "0..4"),
])
def test_nb201_parse_errors_name_the_problem(nb201, text, fragment):
    with pytest.raises(CellParseError, match=fragment.replace("(", r"\(").replace("|", r"\|")):
        nb201.parse(text)


def test_nb201_rejects_graphs_off_the_skeleton(nb201):
    cell = nb201.parse(BEST_NB201)
    adj = cell.adjacency()
    adj[0, 7] = 1
    ok, reason = nb201.is_valid(Cell.make(adj, cell.ops))
    assert not ok and "skeleton" in reason


# -- validity rules shared by spaces ---------------------------------------------------

INPUT, C3, C1, MP, OUTPUT = "input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output"


@pytest.mark.parametrize("matrix, ops, fragment", [
    ([[0, 1, 0], [0, 0, 1], [0, 1, 0]], [INPUT, C3, OUTPUT], "cycle"),
    ([[0, 0, 1], [1, 0, 0], [0, 0, 0]], [INPUT, C3, OUTPUT], "points backwards"),
    ([[0, 1], [0, 0]], [INPUT, "conv5x5"], "unknown op 'conv5x5'"),
    ([[0] * 8 for _ in range(8)], [INPUT] + [C3] * 6 + [OUTPUT], "8 nodes"),
    ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], [INPUT, C3, OUTPUT], "not connected"),
    ([[0, 1], [0, 1]], [INPUT, OUTPUT], "self-loop"),
    ([[0, 1], [0, 0]], [C3, OUTPUT], "first op must be 'input'"),
])
def test_invalid_nb101_cells_give_one_line_reasons(nb101, matrix, ops, fragment):
    cell = Cell.make(matrix, ops)
    ok, reason = nb101.is_valid(cell)
    assert not ok and fragment in reason
    with pytest.raises(InvalidCellError, match="invalid nb101 cell") as err:
        nb101.validate(cell)
    assert "\n" not in str(err.value)


def test_nb101_counts_edges_after_pruning(nb101):
    full = np.triu(np.ones((7, 7), dtype=int), 1)  # 21 edges
    ok, reason = nb101.is_valid(Cell.make(full, [INPUT] + [C3] * 5 + [OUTPUT]))
    assert not ok and "21 edges" in reason
    # a dangling node's edges do not count once pruned
    m = np.zeros((7, 7), dtype=int)
    m[0, 1] = m[1, 6] = m[0, 2] = m[2, 3] = m[3, 4] = m[4, 5] = 1  # 5 dead-ends off node 2
    cell = Cell.make(m, [INPUT, C3, C1, MP, C3, C1, OUTPUT])
    assert nb101.is_valid(cell) == (True, "")
    assert nb101.canonical(cell).num_nodes == 3


def test_cell_shape_errors_are_clear():
    with pytest.raises(InvalidCellError, match="square"):
        Cell.make([[0, 1, 0]], ["input"])
    with pytest.raises(InvalidCellError, match="one op per node"):
        Cell.make([[0, 1], [0, 0]], ["input"])
    with pytest.raises(InvalidCellError, match="0 or 1"):
        Cell.make([[0, 2], [0, 0]], ["input", "output"])


def test_unknown_space_names_the_choices():
    with pytest.raises(UnknownNameError, match="unknown space 'nb999'; choose one of: nb201"):
        get_space("nb999")


# -- NAS-Bench-101 hash matches the official implementation ------------------------------

@pytest.fixture(scope="module")
def official_spec():
    from nasbench_pytorch.model.model_spec import ModelSpec
    return ModelSpec


def _official_hash(spec_cls, cell):
    from nasbench_pytorch.model import graph_util

    # the package's spec prunes officially but keeps its matrix as a torch tensor, which
    # its own hash_module cannot sum; hash the pruned matrix as the official API does
    spec = spec_cls(cell.adjacency().astype(int), list(cell.ops))
    ops = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]
    labeling = [-1] + [ops.index(op) for op in spec.ops[1:-1]] + [-2]
    return graph_util.hash_module(spec.matrix.numpy(), labeling)


def test_nb101_hash_equals_official_hash_spec(nb101, official_spec):
    cells = nb101.sample(np.random.default_rng(1), 200)
    for cell in cells:
        assert nb101.canonical_hash(cell) == _official_hash(official_spec, cell)


def test_nb101_hash_prunes_like_the_official_spec(nb101, official_spec):
    m = np.zeros((7, 7), dtype=int)
    m[0, 1] = m[1, 6] = m[0, 2] = m[2, 3] = 1  # nodes 2, 3 dangle
    cell = Cell.make(m, [INPUT, C3, C1, MP, C3, C1, OUTPUT])
    assert nb101.canonical_hash(cell) == _official_hash(official_spec, cell)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_nb101_hash_invariant_under_relabelling_and_neighbours_distinct(nb101, seed):
    rng = np.random.default_rng(seed)
    cell = nb101.sample(rng, 1)[0]
    order = random_topological_order(cell, rng)
    if order[0] == 0 and order[-1] == cell.num_nodes - 1:  # input/output must stay put
        assert nb101.canonical_hash(cell.relabel(order)) == nb101.canonical_hash(cell)
    nbrs = nb101.neighbours(cell)
    hashes = {nb101.canonical_hash(c) for c in nbrs}
    assert len(hashes) == len(nbrs) > 0 and nb101.canonical_hash(cell) not in hashes


def test_nb101_non_isomorphic_cells_hash_differently(nb101):
    a = Cell.make([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT])
    b = Cell.make([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, C1, OUTPUT])
    c = Cell.make([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT])
    assert len({nb101.canonical_hash(x) for x in (a, b, c)}) == 3


def test_nb101_tensors_pad_after_the_output(nb101):
    cell = Cell.make([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, MP, OUTPUT])
    adj, ops = nb101.to_arrays([cell])
    assert adj.shape == (1, 7, 7) and ops.shape == (1, 7, 5)
    assert ops[0, 3:].sum() == 0
    assert nb101.from_arrays(adj, ops.argmax(-1))[0] == cell


# -- NAS-Bench-Graph -------------------------------------------------------------------

def test_finite_space_hashes_are_in_id_order(nb201, nbgraph):
    for space in (nb201, nbgraph):
        hashes = space.hashes()
        assert len(hashes) == len(space)
        for i in (0, 17, len(space) - 1):
            assert hashes[i] == space.canonical_hash(space.cells()[i])


def test_nbgraph_counts_match_the_benchmark(nbgraph):
    from nas_bench_graph import light_read

    assert len(nbgraph) == 26_206
    assert set(nbgraph.valid_hashes().tolist()) == set(light_read("cora"))
    proteins = get_space("nbgraph-proteins")
    assert len(proteins) == 2_021
    assert set(proteins.valid_hashes().tolist()) == set(light_read("proteins"))


@SETTINGS
@given(idx=st.integers(0, 26_205), seed=st.integers(0, 2**32 - 1))
def test_nbgraph_hash_is_invariant_under_relabelling(nbgraph, idx, seed):
    cell = nbgraph.cells()[idx]
    relabelled = cell.relabel(random_topological_order(cell, np.random.default_rng(seed)))
    assert nbgraph.is_valid(relabelled) == (True, "")
    assert nbgraph.index(relabelled) == idx


def test_nbgraph_round_trips_and_neighbours(nbgraph):
    for idx in (0, 1234, 26_205):
        cell = nbgraph.cells()[idx]
        assert nbgraph.index(nbgraph.parse(nbgraph.format(cell))) == idx
        nbrs = nbgraph.neighbours(cell)
        ids = {nbgraph.index(c) for c in nbrs}
        assert len(ids) == len(nbrs) > 0 and idx not in ids


def test_nbgraph_rejects_all_skip_and_foreign_ops(nbgraph):
    with pytest.raises(InvalidCellError, match="only skip"):
        nbgraph.parse("0,1,2,3|skip,skip,skip,skip")
    with pytest.raises(CellParseError, match="unknown nbgraph-proteins op 'gat'"):
        get_space("nbgraph-proteins").parse("0,0,0,0|gat,gcn,gcn,gcn")
