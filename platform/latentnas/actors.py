"""Ray actors shared by the trials of an experiment: oracles and encoder shards.

``OracleActor`` hosts an oracle and answers batched queries; it restarts on failure and
its calls are retried, so a killed actor costs a retry, not a trial. For tabular oracles a
trial can instead read the whole table from the object store (:func:`put_table`): one
zero-copy ``ray.get`` per trial, then local lookups; ``latentnas bench platform`` measures
both, and experiments default to the table (STACK_NOTES: one actor call costs ~1.5 ms, a
local lookup ~0.2 µs).

``EncoderShard`` holds one contiguous slice of a space's embedding table on its device
(a GPU when the actor was given one), and optionally the encoder. It answers
nearest-unvisited queries for its slice, the top-k of an acquisition function over its
slice for a surrogate a searcher ships to it (``GPScorer``), and encode/decode batches.
:class:`ShardedNearest` and :class:`ShardedTopK` fan a query out to every shard and merge
the answers, ties to the lowest position, so 1 and N shards give the same answer.
"""

from __future__ import annotations

import numpy as np
import ray

from latentnas.oracles.base import Oracle, OracleInfo, QueryBatch, TabularOracle


class OracleHost:
    """An oracle behind batched calls (the body of :data:`OracleActor`)."""

    def __init__(self, space: str, dataset: str | None = None, nb101_data: str | None = None,
                 training: dict | None = None):
        from latentnas.benchmarks import resolve

        _require_given_gpus("OracleActor")
        self.oracle = resolve(space, dataset, nb101_data=nb101_data, training=training).oracle

    def trained(self) -> int:
        """Cells a training oracle actually trained (cache misses); 0 for tables."""
        return int(getattr(self.oracle, "trained", 0))

    def info(self) -> OracleInfo:
        return self.oracle.info

    def query(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        batch = self.oracle.query_ids(ids)
        return {"search": batch.search, "report": batch.report, "cost": batch.cost}

    def pid(self) -> int:
        import os

        return os.getpid()


OracleActor = ray.remote(max_restarts=-1, max_task_retries=-1)(OracleHost)


def put_table(oracle) -> ray.ObjectRef:
    """The oracle's arrays in the object store (read back zero-copy by every trial)."""
    return ray.put({"space": oracle.space.name, "info": oracle.info, "search": oracle.search,
                    "report": oracle.report, "cost": oracle.cost,
                    "available": getattr(oracle, "available", None)})


def oracle_from_table(table: dict, space) -> TabularOracle:
    """The oracle behind :func:`put_table`'s object, over ``space`` (the same space)."""
    if table["space"] != space.name:
        raise ValueError(f"table of space {table['space']} given with space {space.name}")
    return TabularOracle(space, table["info"], table["search"], table["report"], table["cost"],
                         available=table.get("available"))


def _require_given_gpus(what: str) -> None:
    """An actor that Ray gave GPUs must see CUDA: a silent fall-back to the CPU would run
    the experiment far slower than planned, on a node that is misconfigured."""
    import torch

    gpus = ray.get_gpu_ids() if ray.is_initialized() else []
    if gpus and not torch.cuda.is_available():
        node = ray.get_runtime_context().get_node_id()
        raise RuntimeError(
            f"{what} was given GPU {gpus} on node {node}, but PyTorch there sees no CUDA "
            f"device (torch {torch.__version__}); install a CUDA build of torch on that node "
            "or run without GPUs (gpus_per_shard / gpus_per_oracle: 0)")


class ActorOracle(Oracle):
    """An :class:`~latentnas.oracles.base.Oracle` whose queries go to ``OracleActor``s.

    With several actors (a pool, e.g. one per GPU for a training oracle) a cell id always
    goes to the same actor (``id mod N``), so each actor's cache sees every repeat of its
    cells and no cell is trained twice; a batch is split, sent to its actors at once, and
    reassembled in order."""

    def __init__(self, actors, space, info: OracleInfo, optimum_search: float,
                 optimum_report: float):
        self.actors = list(actors) if isinstance(actors, (list, tuple)) else [actors]
        self.space, self.info = space, info
        self._opt = (optimum_search, optimum_report)

    @property
    def actor(self):
        return self.actors[0]

    def index(self, cell):
        return self.space.index(cell)

    def query_ids(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        owner = ids % len(self.actors)
        parts = [np.flatnonzero(owner == k) for k in range(len(self.actors))]
        refs = {k: self.actors[k].query.remote(ids[p]) for k, p in enumerate(parts) if len(p)}
        answers = dict(zip(refs, ray.get(list(refs.values()))))
        out = {key: np.empty(len(ids)) for key in ("search", "report", "cost")}
        for k, ans in answers.items():
            for key in out:
                out[key][parts[k]] = ans[key]
        return QueryBatch(ids, out["search"], out["report"], out["cost"])

    @property
    def optimum_search(self) -> float:
        return self._opt[0]

    @property
    def optimum_report(self) -> float:
        return self._opt[1]


@ray.remote(max_restarts=-1, max_task_retries=-1)
class EncoderShard:
    """Rows ``[start, start + len(features))`` of an embedding table, on ``device``, and
    optionally the encoder that made it (``checkpoint``: the bytes of an arch2vec
    checkpoint for ``space``, header-checked on load)."""

    def __init__(self, features: np.ndarray, start: int, device: str = "auto",
                 checkpoint: bytes | None = None, space: str | None = None):
        import torch

        _require_given_gpus("EncoderShard")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.start = start
        self.raw = np.array(features, dtype=np.float32)
        self.features = torch.as_tensor(self.raw, device=self.device)
        self.encoder = _load_encoder(checkpoint, space, str(self.device)) if checkpoint else None

    def _blocked(self, blocked_bits: np.ndarray) -> np.ndarray:
        n = len(self.raw)
        return np.unpackbits(blocked_bits, count=self.start + n)[self.start:].astype(bool)

    def nearest(self, point: np.ndarray, blocked_bits: np.ndarray) -> tuple[float, int]:
        """``(squared distance, global position)`` of the nearest unblocked row, or
        ``(inf, -1)`` when every row of the shard is blocked. ``blocked_bits`` is the
        whole domain's blocked mask packed with ``np.packbits``."""
        import torch

        blocked = self._blocked(blocked_bits)
        p = torch.as_tensor(point, dtype=torch.float32, device=self.device)
        dist = ((self.features - p) ** 2).sum(dim=1)
        dist[torch.as_tensor(blocked, device=self.device)] = float("inf")
        k = int(torch.argmin(dist))
        d = float(dist[k])
        return (d, self.start + k) if d != float("inf") else (d, -1)

    def top_k(self, scorer, blocked_bits: np.ndarray, k: int) -> list[tuple[float, int]]:
        """``(score, global position)`` of the shard's ``k`` best unblocked rows under
        ``scorer`` (e.g. a GP's LogEI shipped by the searcher), best first, ties to the
        lowest position."""
        import torch

        free = np.flatnonzero(~self._blocked(blocked_bits))
        if len(free) == 0:
            return []
        if hasattr(scorer, "to"):
            scorer = scorer.to(self.device)
        # the rows where they live: nothing of the table is uploaded per query
        scores = np.asarray(scorer.scores_raw(self.features[torch.as_tensor(free,
                                                                           device=self.device)]))
        order = np.lexsort((free, -scores))[:k]
        return [(float(scores[i]), self.start + int(free[i])) for i in order]

    def encode(self, adj: np.ndarray, ops: np.ndarray) -> np.ndarray:
        """Graph embeddings ``[B, d]`` of a batch of cells (needs ``checkpoint``)."""
        import torch

        enc = self._need_encoder()
        with torch.no_grad():
            return enc.encode(torch.as_tensor(adj), torch.as_tensor(ops)).cpu().numpy()

    def decode(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(op probabilities [B, N, K], edge probabilities [B, N, N])`` of per-node
        latents ``z [B, N, d]`` (needs ``checkpoint``)."""
        import torch

        ops, adj = self._need_encoder().decode(torch.as_tensor(z))
        return ops.cpu().numpy(), adj.cpu().numpy()

    def _need_encoder(self):
        if self.encoder is None:
            raise RuntimeError("this encoder shard holds embeddings only; create it with the "
                               "encoder's checkpoint (make_shards(..., checkpoint=...))")
        return self.encoder

    def device_name(self) -> str:
        return str(self.device)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()


def _load_encoder(checkpoint: bytes, space: str, device: str):
    """A learned encoder from checkpoint bytes (through a file, so every header check of
    :func:`latentnas.checkpoints.load_encoder` applies)."""
    import os
    import tempfile

    from latentnas.checkpoints import load_encoder
    from latentnas.spaces import get_space

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "checkpoint.safetensors")
        with open(path, "wb") as f:
            f.write(checkpoint)
        return load_encoder(path, get_space(space), device=device)


class ShardedNearest:
    """``(point, blocked) -> position`` over N :class:`EncoderShard` actors (a
    :attr:`searchers.Domain.nearest`)."""

    def __init__(self, shards: list):
        self.shards = shards

    def __call__(self, point: np.ndarray, blocked: np.ndarray) -> int:
        bits = np.packbits(blocked)
        answers = ray.get([s.nearest.remote(point, bits) for s in self.shards])
        # min distance, ties to the lowest position (shards are in position order)
        best = min((a for a in answers if a[1] >= 0), key=lambda a: (a[0], a[1]))
        return int(best[1])


class ShardedTopK:
    """``(scorer, blocked, k) -> positions`` over N :class:`EncoderShard` actors (a
    :attr:`searchers.Domain.top_k`): every shard scores its rows and returns its own
    top ``k``; the merge keeps the ``k`` best overall, ties to the lowest position."""

    def __init__(self, shards: list):
        self.shards = shards

    def __call__(self, scorer, blocked: np.ndarray, k: int) -> list[int]:
        bits = np.packbits(blocked)
        ref = ray.put(scorer)
        answers = ray.get([s.top_k.remote(ref, bits, k) for s in self.shards])
        merged = sorted((a for shard in answers for a in shard), key=lambda a: (-a[0], a[1]))
        return [pos for _, pos in merged[:k]]


def make_shards(features: np.ndarray, n: int, gpus_per_shard: float = 0.0,
                device: str = "auto", name: str | None = None,
                resources: dict | None = None, checkpoint: bytes | None = None,
                space: str | None = None) -> list:
    """``n`` encoder shards over contiguous slices of ``features``, named
    ``<name>-<k>`` when ``name`` is given (so tools can find them); ``resources`` are Ray
    custom resources each shard requests (to pin shards to node types)."""
    bounds = np.linspace(0, len(features), n + 1).astype(int)
    opts = {"num_gpus": gpus_per_shard} if gpus_per_shard else {"num_cpus": 0}
    if resources:
        opts["resources"] = dict(resources)
    return [EncoderShard.options(**opts, **({"name": f"{name}-{k}"} if name else {}))
            .remote(features[a:b], int(a), device, checkpoint, space)
            for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
