"""Analyses of an embedding against the metric it should make easy to search.

* :func:`smoothness`: mean |Δ metric| between anchor cells and their nearest latent
  neighbours, against random pairs (the arch2vec paper's nearest-neighbour analysis);
* :func:`distance_correlation`: how L2 distance in the embedding grows with the edit
  distance between cells (the paper's comparison of arch2vec with a supervised embedding):
  the mean L2 per edit distance and the rank correlation over random pairs;
* :func:`crowding`: how close each of the best cells lies to its nearest other cell,
  relative to the typical distance (a model whose length-scales fit the whole space
  cannot tell apart cells crowded much closer than that);
* :func:`supervised_embedding`: the supervised baseline's embedding, a GIN trained to
  regress the search metric of ``n`` random cells.

The edit distance between two cells of one space is counted on their stored forms: edges
that differ plus nodes whose op differs. On NAS-Bench-201 every cell has the same skeleton,
so this is the number of edge ops that differ, the exact graph edit distance; elsewhere it
is an upper bound of it.
"""

from __future__ import annotations

import numpy as np


def crowding(embeddings: np.ndarray, values: np.ndarray, top: int = 50) -> dict[str, float]:
    """For the ``top`` cells with the highest ``values``: L2 distance to the nearest other
    cell divided by the median distance to all cells. ``mean`` over them, ``best`` for
    the best cell. Near 0: the good cells sit on top of their neighbours, so a surrogate
    that is smooth at the scale of the whole space gives them one prediction."""
    emb = np.asarray(embeddings, dtype=np.float64)
    ratios = []
    for c in np.argsort(-np.asarray(values), kind="stable")[:top]:
        d = np.sqrt(((emb - emb[c]) ** 2).sum(-1))
        d = np.delete(d, c)
        median = float(np.median(d))
        ratios.append(float(d.min()) / median if median > 0 else 0.0)
    return {"top": len(ratios), "mean": float(np.mean(ratios)), "best": ratios[0]}


def smoothness(embeddings: np.ndarray, values: np.ndarray, rng: np.random.Generator,
               anchors: int = 1000, k: int = 10) -> dict[str, float]:
    """Mean |Δ value| from ``anchors`` random cells to their nearest latent neighbour, to
    their ``k`` nearest, and to random cells (L2 in embedding space)."""
    n = len(embeddings)
    idx = rng.choice(n, min(anchors, n), replace=False)
    nearest = np.empty((len(idx), k), dtype=np.int64)
    emb = embeddings.astype(np.float64)
    sq = (emb ** 2).sum(-1)
    for start in range(0, len(idx), 256):      # chunks keep the distance matrix small
        part = idx[start:start + 256]
        dist = sq[part, None] + sq[None, :] - 2 * emb[part] @ emb.T
        dist[np.arange(len(part)), part] = np.inf
        nearest[start:start + len(part)] = np.argsort(dist, axis=1, kind="stable")[:, :k]
    random = rng.integers(0, n, len(idx))
    return {"anchors": len(idx),
            "nearest": float(np.abs(values[nearest[:, 0]] - values[idx]).mean()),
            f"nearest_{k}": float(np.abs(values[nearest] - values[idx, None]).mean()),
            "random": float(np.abs(values[random] - values[idx]).mean())}


def edit_distances(adj: np.ndarray, ops: np.ndarray, a: np.ndarray, b: np.ndarray
                   ) -> np.ndarray:
    """Edges plus node ops that differ between cells ``a[i]`` and ``b[i]`` (``adj
    [M, N, N]``, one-hot ``ops [M, N, K]`` of the whole space)."""
    edges = (adj[a] != adj[b]).sum(axis=(1, 2))
    nodes = (ops[a].argmax(-1) != ops[b].argmax(-1)) & (ops[a].any(-1) | ops[b].any(-1))
    return edges + nodes.sum(-1)


def distance_correlation(embeddings: np.ndarray, adj: np.ndarray, ops: np.ndarray,
                         rng: np.random.Generator, neighbours=None, pairs: int = 20_000,
                         max_distance: int = 6) -> dict:
    """Spearman's ρ between edit distance and L2 distance over ``pairs`` random pairs, and
    the mean L2 at each edit distance 1..``max_distance``. Random pairs are rarely close, so
    with ``neighbours`` (``id -> ids`` one edit away) as many pairs again come from random
    walks of 1..``max_distance`` edits; their distance is measured, not assumed."""
    from scipy.stats import spearmanr

    n = len(embeddings)
    a, b = rng.integers(0, n, pairs), rng.integers(0, n, pairs)
    random_l2 = float(np.sqrt(((embeddings[a] - embeddings[b]) ** 2).sum(-1)).mean())
    if neighbours is not None:
        starts = rng.integers(0, n, pairs)
        ends = starts.copy()
        steps = rng.integers(1, max_distance + 1, pairs)
        for k in range(pairs):
            for _ in range(steps[k]):
                nbrs = neighbours(int(ends[k]))
                ends[k] = nbrs[int(rng.integers(len(nbrs)))]
        a, b = np.concatenate([a, starts]), np.concatenate([b, ends])
    keep = a != b
    a, b = a[keep], b[keep]
    ged = edit_distances(adj, ops, a, b)
    l2 = np.sqrt(((embeddings[a] - embeddings[b]) ** 2).sum(-1))
    rho = spearmanr(ged, l2).statistic
    by_distance = {int(d): float(l2[ged == d].mean()) for d in range(1, max_distance + 1)
                   if (ged == d).sum() >= 20}
    return {"pairs": int(len(a)), "spearman": float(rho), "mean_l2_by_distance": by_distance,
            "mean_l2_random": random_l2}


def supervised_embedding(adj: np.ndarray, ops: np.ndarray, values: np.ndarray,
                         n: int, seed: int) -> np.ndarray:
    """``[M, 16]``: the supervised GIN (``encoders.supervised``) trained on the values of
    ``n`` random cells, applied to every cell."""
    import torch

    from encoders.supervised import SupervisedConfig, SupervisedGIN

    rng = np.random.default_rng(seed)
    train = rng.choice(len(values), min(n, len(values)), replace=False)
    adj_t = torch.as_tensor(adj, dtype=torch.float32)
    ops_t = torch.as_tensor(ops, dtype=torch.float32)
    enc = SupervisedGIN(ops.shape[-1], SupervisedConfig(seed=seed))
    enc.fit(adj_t[train], ops_t[train], torch.as_tensor(values[train]))
    return enc.encode(adj_t, ops_t).numpy()


def gp_rank_quality(features: np.ndarray, values: np.ndarray, n: int,
                    rng: np.random.Generator, max_eval: int = 5000) -> float:
    """Kendall's τ between a GP's posterior mean and the true values on cells it was not
    fitted on, the GP (BoTorch ``SingleTaskGP``, RBF with ARD, inputs scaled to the unit
    cube of the whole space, targets standardised) fitted on ``n`` random labelled cells:
    how well the embedding lets a surrogate rank what it has not seen."""
    import torch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from scipy.stats import kendalltau

    f = features.astype(np.float64)
    lo, span = f.min(0), np.where(f.max(0) > f.min(0), f.max(0) - f.min(0), 1.0)
    x = torch.as_tensor((f - lo) / span)
    train = rng.choice(len(values), n, replace=False)
    rest = np.setdiff1d(np.arange(len(values)), train)
    rest = rng.choice(rest, min(max_eval, len(rest)), replace=False)
    y = torch.as_tensor(values[train], dtype=torch.float64).unsqueeze(-1)
    model = SingleTaskGP(x[train], y, outcome_transform=Standardize(m=1))
    with torch.random.fork_rng():
        torch.manual_seed(int(rng.integers(2**31)))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    with torch.no_grad():
        mean = model.posterior(x[rest]).mean.squeeze(-1).numpy()
    return float(kendalltau(mean, values[rest]).statistic)


def neighbour_smoothness(values: np.ndarray, neighbours, rng: np.random.Generator,
                         anchors: int = 1000) -> float:
    """Mean |Δ value| between random cells and their one-edit neighbours."""
    idx = rng.integers(0, len(values), anchors)
    diffs = [abs(values[j] - values[i]) for i in idx for j in neighbours(int(i))]
    return float(np.mean(diffs))


def landscape(bench, encodings=("arch2vec", "adjacency", "path"), sizes=(50, 100),
              repeats: int = 5, seed: int = 0) -> dict:
    """Why a searcher does well or badly on ``bench`` (a benchmark with a finite space):
    how smooth each encoding is for the search metric (nearest latent neighbour, random
    pair, one-edit neighbour), how well a GP on ``sizes`` random labelled cells ranks the
    rest per encoding (Kendall τ, mean over ``repeats`` draws), and how far apart the best
    cells are against how well the search metric predicts the report metric."""
    from scipy.stats import spearmanr

    from latentnas.domains import neighbour_fn

    oracle = bench.oracle
    ids = bench.search_ids if bench.search_ids is not None else np.arange(len(oracle))
    search, report = oracle.search[ids], oracle.report[ids]
    rng = np.random.default_rng(seed)
    out: dict = {"cells": int(len(ids)), "encodings": {}}
    if bench.search_ids is None:
        out["one_edit"] = neighbour_smoothness(search, neighbour_fn(bench.space), rng)
    for enc in encodings:
        emb = bench.features(enc)[ids]
        if emb.shape[1] > 1000:         # NAS-Bench-Graph's path encoding: 5,424 dimensions
            out["encodings"][enc] = {"skipped": f"{emb.shape[1]:,} dimensions"}
            continue
        row = smoothness(emb, search, np.random.default_rng(seed))
        for n in sizes:
            taus = [gp_rank_quality(emb, search, n, np.random.default_rng(seed + r))
                    for r in range(repeats)]
            row[f"gp_tau_{n}"] = float(np.mean(taus))
            row[f"gp_tau_{n}_se"] = float(np.std(taus, ddof=1) / np.sqrt(repeats))
        out["encodings"][enc] = row
    order = np.sort(search)[::-1]
    top = np.argsort(-search)[: max(len(search) // 100, 10)]
    out["gaps"] = {"best": float(order[0]), "10th": float(order[9]), "100th": float(order[99]),
                   "median": float(np.median(search)),
                   "spearman_search_report": float(spearmanr(search, report).statistic),
                   "spearman_top1pct": float(spearmanr(search[top], report[top]).statistic)}
    return out
