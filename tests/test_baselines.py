"""Baseline encodings: adjacency one-hot, path encoding, the supervised GIN; search domains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from encoders.discrete import AdjacencyOneHot, PathEncoding, cell_paths
from encoders.supervised import SupervisedConfig, SupervisedGIN
from latentnas.spaces.base import Cell

from .relabel import relabel_inner

ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_adjacency_one_hot_is_the_upper_triangle_then_the_ops(nb201):
    cell = nb201.parse(ALL_CONV)
    adj, ops = nb201.to_tensors([cell])
    enc = AdjacencyOneHot().fit(adj, ops)
    x = enc.encode(adj, ops)
    n, k = 8, len(nb201.ops)
    assert enc.dim == x.shape[1] == n * (n - 1) // 2 + n * k
    rows, cols = np.triu_indices(n, 1)
    assert x[0, : len(rows)].tolist() == adj[0].numpy()[rows, cols].tolist()
    assert x[0, len(rows):].reshape(n, k).argmax(-1).tolist() == ops[0].argmax(-1).tolist()


def test_paths_of_a_small_dag_are_the_op_sequences_between_input_and_output():
    # 0 -> 1 -> 3, 0 -> 2 -> 3, 1 -> 2, 0 -> 3 ; ops at 1 and 2 are 5 and 7
    adj = np.zeros((4, 4), dtype=bool)
    for u, v in [(0, 1), (1, 3), (0, 2), (2, 3), (1, 2), (0, 3)]:
        adj[u, v] = True
    assert cell_paths(adj, np.array([0, 5, 7, 9]), last=3) == {(), (5,), (7,), (5, 7)}


def test_nb201_path_encoding_has_one_bit_per_distinct_path_label(nb201):
    mixed = ("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+"
             "|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    cells = [nb201.parse(mixed), nb201.parse(ALL_CONV)]
    enc = PathEncoding().fit(*nb201.to_tensors(nb201.cells()))
    x = enc.encode(*nb201.to_tensors(cells))
    op = {o: i for i, o in enumerate(nb201.ops)}
    c3, c1, avg, skip = op["nor_conv_3x3"], op["nor_conv_1x1"], op["avg_pool_3x3"], op["skip_connect"]
    labels = {enc.vocabulary[k] for k in torch.nonzero(x[0]).flatten().tolist()}
    # edge paths 0-3, 0-1-3, 0-2-3, 0-1-2-3
    assert labels == {(skip,), (c3, c1), (c1, c3), (c3, avg, c3)}
    # all-conv: 0-1-3 and 0-2-3 share a label, so 4 paths give 3 bits
    assert x[1].sum() == 3
    assert set(x.flatten().tolist()) <= {0.0, 1.0}
    assert all(1 <= len(p) <= 3 for p in enc.vocabulary)


def test_path_encoding_ignores_the_node_order_and_truncation_keeps_the_commonest(nb101):
    cells = nb101.sample(np.random.default_rng(1), 40)
    relabelled = relabel_inner(cells, np.random.default_rng(2))
    assert any(a != b for a, b in zip(cells, relabelled))
    enc = PathEncoding().fit(*nb101.to_tensors(cells))
    assert torch.equal(enc.encode(*nb101.to_tensors(cells)), enc.encode(*nb101.to_tensors(relabelled)))
    small = PathEncoding(max_paths=5).fit(*nb101.to_tensors(cells))
    counts = enc.encode(*nb101.to_tensors(cells)).sum(0)
    kept = [enc.vocabulary.index(p) for p in small.vocabulary]
    assert small.dim == 5 and sorted(counts[kept].tolist()) == sorted(counts.tolist())[-5:]


def test_path_encoding_needs_fit_first(nb201):
    with pytest.raises(RuntimeError, match="fit"):
        PathEncoding().encode(*nb201.to_tensors(nb201.cells()[:2]))


def test_supervised_gin_learns_to_rank_unseen_cells(nb201):
    from latentnas.oracles import get_oracle

    y = get_oracle("nb201").search
    ok = np.flatnonzero(y > 80)                   # diverged trainings aside, as a surrogate sees
    idx = np.random.default_rng(0).choice(ok, 700, replace=False)
    adj, ops = nb201.arrays()
    a, x = torch.as_tensor(adj[idx], dtype=torch.float32), torch.as_tensor(ops[idx])
    enc = SupervisedGIN(len(nb201.ops), SupervisedConfig(epochs=15, seed=0))
    enc.fit(a[:500], x[:500], torch.as_tensor(y[idx[:500]]))
    pred = enc.predict(a[500:], x[500:]).numpy()
    assert spearmanr(pred, y[idx[500:]]).statistic > 0.6
    assert enc.encode(a[:3], x[:3]).shape == (3, 16)


def test_supervised_gin_is_deterministic_and_checks_its_targets(nb201):
    adj, ops = nb201.to_tensors(nb201.cells()[:40])
    y = torch.linspace(0, 1, 40)
    z = [SupervisedGIN(7, SupervisedConfig(epochs=2, seed=4)).fit(adj, ops, y).encode(adj, ops)
         for _ in range(2)]
    assert torch.equal(z[0], z[1])
    with pytest.raises(ValueError, match="targets"):
        SupervisedGIN(7).fit(adj, ops)
    with pytest.raises(ValueError, match="40 cells but 3 targets"):
        SupervisedGIN(7).fit(adj, ops, y[:3])


def test_search_domains_carry_features_neighbours_and_graphs():
    from latentnas.benchmarks import resolve
    from latentnas.errors import ConfigError, UnknownNameError

    nb201 = resolve("nb201")
    d = nb201.domain("path")
    assert d.size == 15_625 and d.features.shape[0] == 15_625
    assert d.graphs[0].shape == (15_625, 8, 8) and d.value_scale == 100
    nbrs = d.neighbours(7567)
    assert len(nbrs) == 24 and 7567 not in nbrs
    assert nb201.domain("supervised").features is None
    with pytest.raises(UnknownNameError, match="unknown encoding 'graph2vec'"):
        nb201.domain("graph2vec")
    with pytest.raises(ConfigError, match="sampled, not enumerated"):
        resolve("nb101").domain("adjacency")


def test_isomorphic_cells_share_the_path_encoding_but_not_the_adjacency():
    a = Cell.make(np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]),
                  ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
    b = a.relabel([0, 2, 1, 3])
    from latentnas.spaces import get_space

    s = get_space("nb101")
    adj, ops = s.to_tensors([a, b])
    path = PathEncoding().fit(adj, ops).encode(adj, ops)
    onehot = AdjacencyOneHot().fit(adj, ops).encode(adj, ops)
    assert torch.equal(path[0], path[1]) and not torch.equal(onehot[0], onehot[1])
