"""Ray actors shared by the trials of an experiment: oracles and encoder shards.

``OracleActor`` hosts an oracle and answers batched queries; it restarts on failure and
its calls are retried, so a killed actor costs a retry, not a trial. For tabular oracles a
trial can instead read the whole table from the object store (:func:`put_table`): one
zero-copy ``ray.get`` per trial, then local lookups; ``latentnas bench platform`` measures
both, and experiments default to the table (STACK_NOTES: one actor call costs ~1.5 ms, a
local lookup ~0.2 µs).

``EncoderShard`` holds one contiguous slice of a space's embedding table on its device
(a GPU when the actor was given one) and answers nearest-unvisited queries for it;
:class:`ShardedNearest` fans a query out to every shard and merges their answers, ties to
the lowest id, so 1 and N shards give the same answer.
"""

from __future__ import annotations

import numpy as np
import ray

from latentnas.oracles.base import Oracle, OracleInfo, QueryBatch, TabularOracle


class OracleHost:
    """An oracle behind batched calls (the body of :data:`OracleActor`)."""

    def __init__(self, space: str, dataset: str | None = None, nb101_data: str | None = None):
        from latentnas.oracles import get_oracle

        self.oracle = get_oracle(space, dataset, nb101_data=nb101_data)

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
                    "report": oracle.report, "cost": oracle.cost})


def oracle_from_table(table: dict) -> TabularOracle:
    from latentnas.spaces import get_space

    return TabularOracle(get_space(table["space"]), table["info"], table["search"],
                         table["report"], table["cost"])


class ActorOracle(Oracle):
    """An :class:`~latentnas.oracles.base.Oracle` whose queries go to an ``OracleActor``."""

    def __init__(self, actor, space, info: OracleInfo, optimum_search: float,
                 optimum_report: float):
        self.actor, self.space, self.info = actor, space, info
        self._opt = (optimum_search, optimum_report)

    def index(self, cell):
        return self.space.index(cell)

    def query_ids(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        out = ray.get(self.actor.query.remote(ids))
        return QueryBatch(ids, out["search"], out["report"], out["cost"])

    @property
    def optimum_search(self) -> float:
        return self._opt[0]

    @property
    def optimum_report(self) -> float:
        return self._opt[1]


@ray.remote(max_restarts=-1, max_task_retries=-1)
class EncoderShard:
    """Rows ``[start, start + len(features))`` of an embedding table, on ``device``."""

    def __init__(self, features: np.ndarray, start: int, device: str = "auto"):
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.start = start
        self.features = torch.as_tensor(np.array(features, dtype=np.float32), device=self.device)

    def nearest(self, point: np.ndarray, blocked_bits: np.ndarray) -> tuple[float, int]:
        """``(squared distance, global position)`` of the nearest unblocked row, or
        ``(inf, -1)`` when every row of the shard is blocked. ``blocked_bits`` is the
        whole domain's blocked mask packed with ``np.packbits``."""
        import torch

        n = len(self.features)
        blocked = np.unpackbits(blocked_bits, count=self.start + n)[self.start:].astype(bool)
        p = torch.as_tensor(point, dtype=torch.float32, device=self.device)
        dist = ((self.features - p) ** 2).sum(dim=1)
        dist[torch.as_tensor(blocked, device=self.device)] = float("inf")
        k = int(torch.argmin(dist))
        d = float(dist[k])
        return (d, self.start + k) if d != float("inf") else (d, -1)

    def device_name(self) -> str:
        return str(self.device)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()


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


def make_shards(features: np.ndarray, n: int, gpus_per_shard: float = 0.0,
                device: str = "auto", name: str | None = None,
                resources: dict | None = None) -> list:
    """``n`` encoder shards over contiguous slices of ``features``, named
    ``<name>-<k>`` when ``name`` is given (so tools can find them); ``resources`` are Ray
    custom resources each shard requests (to pin shards to node types)."""
    bounds = np.linspace(0, len(features), n + 1).astype(int)
    opts = {"num_gpus": gpus_per_shard} if gpus_per_shard else {"num_cpus": 0}
    if resources:
        opts["resources"] = dict(resources)
    return [EncoderShard.options(**opts, **({"name": f"{name}-{k}"} if name else {}))
            .remote(features[a:b], int(a), device)
            for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
