"""Every unique NAS-Bench-101 cell, without the tfrecord.

A NB101 cell is, after pruning, a DAG on n = 2..7 nodes (input first, output last) in
which every node lies on an input->output path, with at most 9 edges, and each of the
n - 2 middle nodes labelled with one of 3 ops. Two cells are the same when their labelled
graphs are isomorphic (input and output fixed). The enumeration, per n:

1. all upper-triangular n x n 0/1 matrices with at most 9 edges (2**21 for n = 7,
   vectorised), kept when every node is reachable from the input and reaches the output;
2. their isomorphism classes: the canonical code of a matrix is the smallest bit pattern
   of ``P A Pᵀ`` over the (n - 2)! permutations P of the middle nodes;
3. per class, the automorphisms (permutations that leave the representative unchanged),
   and the labellings that are the smallest of their orbit under them — one per unique
   labelled cell.

Then each cell gets the official ``hash_module`` fingerprint (a process pool: ~57 MD5s
per cell). The count is 423,624, the figure the NAS-Bench-101 paper gives; the hashes are
all distinct, which cross-checks the isomorphism classes against the official hash.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass

import numpy as np

from latentnas.spaces.nb101 import HASH_OPS, MAX_EDGES, MAX_NODES, VOCABULARY, hash_module

#: the number of unique cells stated by the NAS-Bench-101 paper
EXPECTED = 423_624


@dataclass
class Enumeration:
    """``adj [M, 7, 7]`` uint8 and ``ops [M, 7]`` int8 (indices into the space's
    vocabulary, -1 past the output node), ``nodes [M]``, ``hashes`` (official
    fingerprints), and how long each stage took."""

    adj: np.ndarray
    ops: np.ndarray
    nodes: np.ndarray
    hashes: list[str]
    seconds: dict[str, float]

    def __len__(self) -> int:
        return len(self.nodes)

    def one_hot(self) -> np.ndarray:
        """Ops one-hot ``[M, 7, K]`` float32 over the space's vocabulary (padding rows 0),
        the layout of ``NB101Space.to_arrays``."""
        out = np.zeros((len(self), MAX_NODES, len(VOCABULARY)), dtype=np.float32)
        rows, cols = np.nonzero(self.ops >= 0)
        out[rows, cols, self.ops[rows, cols]] = 1.0
        return out


def _upper_pairs(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def _valid_matrices(n: int) -> np.ndarray:
    """``[K, n, n]`` upper-triangular matrices with <= 9 edges and every node on an
    input->output path."""
    pairs = _upper_pairs(n)
    e = len(pairs)
    codes = np.arange(1 << e, dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(e)) & 1).astype(np.uint8)
    bits = bits[bits.sum(1) <= MAX_EDGES]
    adj = np.zeros((len(bits), n, n), dtype=np.uint8)
    for k, (i, j) in enumerate(pairs):
        adj[:, i, j] = bits[:, k]
    reach = np.zeros((len(adj), n), dtype=bool)          # reachable from the input
    reach[:, 0] = True
    for v in range(1, n):
        reach[:, v] = (reach[:, :v] & adj[:, :v, v].astype(bool)).any(1)
    coreach = np.zeros((len(adj), n), dtype=bool)        # reaches the output
    coreach[:, n - 1] = True
    for v in range(n - 2, -1, -1):
        coreach[:, v] = (coreach[:, v + 1:] & adj[:, v, v + 1:].astype(bool)).any(1)
    return adj[(reach & coreach).all(1)]


def _perms(n: int) -> np.ndarray:
    """All permutations of ``range(n)`` that fix the input (0) and the output (n - 1)."""
    middle = [list(p) for p in itertools.permutations(range(1, n - 1))]
    return np.array([[0, *p, n - 1] for p in middle], dtype=np.int64).reshape(-1, n)


def _codes(adj: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Bit pattern of ``A[perm][:, perm]`` for every matrix, as int64 (n * n <= 49 bits)."""
    n = adj.shape[1]
    permuted = adj[:, perm][:, :, perm].reshape(len(adj), n * n).astype(np.int64)
    return permuted @ (np.int64(1) << np.arange(n * n, dtype=np.int64))


def _classes(adj: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Representatives of the isomorphism classes and each one's automorphisms."""
    perms = _perms(adj.shape[1])
    canon = np.full(len(adj), np.iinfo(np.int64).max)
    for p in perms:
        canon = np.minimum(canon, _codes(adj, p))
    _, first = np.unique(canon, return_index=True)
    reps = adj[np.sort(first)]
    own = _codes(reps, np.arange(adj.shape[1]))
    is_aut = np.stack([_codes(reps, p) == own for p in perms], axis=1)   # [R, P]
    return reps, [perms[row] for row in is_aut]


def _labellings(reps: np.ndarray, auts: list[np.ndarray]) -> list[tuple[int, np.ndarray]]:
    """``(class index, middle labels [L, n-2])`` for the orbit-minimal labellings."""
    n = reps.shape[1]
    m = n - 2
    labels = np.array(list(itertools.product(range(3), repeat=m)), dtype=np.int64)
    labels = labels.reshape(len(labels), m)
    weight = 3 ** np.arange(m - 1, -1, -1, dtype=np.int64)
    code = labels @ weight
    out = []
    for r, group in enumerate(auts):
        keep = np.ones(len(labels), dtype=bool)
        for p in group:
            # the labelling L∘σ (node i gets the label of σ(i)) is the same cell
            moved = labels[:, p[1:-1] - 1] @ weight
            keep &= code <= moved
        out.append((r, labels[keep]))
    return out


def _hash_chunk(chunk: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[str]:
    """Official hashes of padded cells ``(adj [c, 7, 7], ops [c, 7], nodes [c])``."""
    adj, ops, nodes = chunk
    label = {VOCABULARY.index(op): k for k, op in enumerate(HASH_OPS)}
    return [hash_module(a[:n, :n], [-1, *(label[int(o)] for o in row[1:n - 1]), -2])
            for a, row, n in zip(adj, ops, nodes.tolist())]


def enumerate_nb101(workers: int | None = None, on_stage=None, hashes: bool = True,
                    max_nodes: int = MAX_NODES) -> Enumeration:
    """All unique NB101 cells (see the module docstring) of at most ``max_nodes`` nodes.
    ``on_stage(name, seconds)`` reports progress; ``hashes=False`` skips the fingerprints
    (``hashes`` is then empty)."""
    seconds: dict[str, float] = {}
    adj_out, ops_out, nodes_out = [], [], []
    start = time.perf_counter()
    # vocabulary indices of the hash labels 0, 1, 2 (conv3x3, conv1x1, maxpool)
    label_to_vocab = np.array([VOCABULARY.index(op) for op in HASH_OPS], dtype=np.int8)
    for n in range(2, max_nodes + 1):
        t = time.perf_counter()
        reps, auts = _classes(_valid_matrices(n))
        for r, labels in _labellings(reps, auts):
            k = len(labels)
            if k == 0:
                continue
            padded = np.zeros((k, MAX_NODES, MAX_NODES), dtype=np.uint8)
            padded[:, :n, :n] = reps[r]
            ops = np.full((k, MAX_NODES), -1, dtype=np.int8)
            ops[:, 0] = VOCABULARY.index("input")
            ops[:, 1:n - 1] = label_to_vocab[labels]
            ops[:, n - 1] = VOCABULARY.index("output")
            adj_out.append(padded)
            ops_out.append(ops)
            nodes_out.append(np.full(k, n, dtype=np.int8))
        seconds[f"classes n={n}"] = time.perf_counter() - t
        if on_stage:
            on_stage(f"{n} nodes: {len(reps):,} graphs", seconds[f"classes n={n}"])
    adj, ops, nodes = np.concatenate(adj_out), np.concatenate(ops_out), np.concatenate(nodes_out)
    seconds["graphs"] = time.perf_counter() - start
    t = time.perf_counter()
    fingerprints = _hash_all(adj, ops, nodes, workers) if hashes else []
    seconds["hashes"] = time.perf_counter() - t
    if on_stage and hashes:
        on_stage(f"{len(fingerprints):,} hashes", seconds["hashes"])
    return Enumeration(adj, ops, nodes, fingerprints, seconds)


def _hash_all(adj: np.ndarray, ops: np.ndarray, nodes: np.ndarray,
              workers: int | None) -> list[str]:
    """Official hashes of every cell, in ~64 chunks over a process pool (progress shown)."""
    from latentnas.progress import stage

    bounds = np.linspace(0, len(nodes), 65).astype(int)
    chunks = [(adj[a:b], ops[a:b], nodes[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    workers = workers or os.cpu_count() or 1
    out: list[str] = []
    with stage(f"NB101: official hashes of {len(nodes):,} cells", total=len(chunks)) as advance:
        if workers <= 1:
            for c in chunks:
                out.extend(_hash_chunk(c))
                advance(1)
            return out
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for part in pool.imap(_hash_chunk, chunks):
                out.extend(part)
                advance(1)
    return out


def cell_codes(adj: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """One int64 per padded cell (``adj [M, 7, 7]`` 0/1, ``ops [M, 7]`` vocabulary indices,
    -1 past the output): its upper-triangle bits and op indices. Equal codes mean the same
    labelled matrix, so a cell's id can be found from its codes under every relabelling of
    its middle nodes, without hashes."""
    iu = np.triu_indices(MAX_NODES, 1)
    bits = adj[:, iu[0], iu[1]].astype(np.int64)                     # [M, 21]
    code = bits @ (np.int64(1) << np.arange(len(iu[0]), dtype=np.int64))
    labels = ops.astype(np.int64) + 1                                  # -1..4 -> 0..5
    weights = np.int64(1) << (len(iu[0]) + 3 * np.arange(MAX_NODES, dtype=np.int64))
    return code + labels @ weights


def save(enum: Enumeration, path: str) -> None:
    """Writes the enumeration as a compressed ``.npz``, atomically."""
    import io

    from latentnas.storage import write_bytes

    buffer = io.BytesIO()
    np.savez_compressed(buffer, adj=enum.adj, ops=enum.ops, nodes=enum.nodes,
                        hashes=np.array(enum.hashes, dtype="U32"))
    write_bytes(path, buffer.getvalue())


def load(path: str) -> Enumeration:
    from latentnas.errors import CorruptDataError

    try:
        with np.load(path) as data:
            enum = Enumeration(data["adj"], data["ops"], data["nodes"],
                               data["hashes"].tolist(), {})
    except Exception as exc:
        raise CorruptDataError(f"NB101 enumeration cache {path} is unreadable ({exc}); delete "
                               "it and it will be rebuilt") from exc
    if len(enum) != EXPECTED:
        raise CorruptDataError(f"NB101 enumeration cache {path} has {len(enum):,} cells, not "
                               f"{EXPECTED:,}; delete it and it will be rebuilt")
    return enum


def cached_enumeration(on_stage=None) -> Enumeration:
    """The enumeration from ``$LATENTNAS_CACHE/nb101/cells.npz``, built on first use."""
    from latentnas.cache import cache_dir

    path = cache_dir("nb101", "cells.npz")
    if os.path.exists(path):
        return load(path)
    # first use: ~30 s on 2 cores (the hashes show their own progress), then cached
    enum = enumerate_nb101(on_stage=on_stage)
    if len(enum) != EXPECTED:
        raise RuntimeError(f"enumerated {len(enum):,} NB101 cells, expected {EXPECTED:,}")
    save(enum, path)
    return enum
