"""NAS-Bench-Graph: 26,206 GNN architectures trained on 9 graph datasets.

Reads the tables the ``nas-bench-graph`` package ships (``light_read``). The searcher
sees ``valid_perf``; regret is reported on ``perf`` (test). Latency and parameter count
(millions) are extra columns. The light tables carry no training time, so the cost is
one unit per query.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from latentnas.errors import CorruptDataError, MissingDataError, UnknownNameError
from latentnas.oracles.base import OracleInfo, TabularOracle
from latentnas.spaces import get_space

DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv",
            "proteins")


@lru_cache(maxsize=None)
def load_nbgraph(dataset: str) -> TabularOracle:
    """The NAS-Bench-Graph oracle for ``dataset``, loaded once per process."""
    if dataset not in DATASETS:
        raise UnknownNameError("NAS-Bench-Graph dataset", dataset, DATASETS)
    try:
        from nas_bench_graph import light_read
    except ImportError as exc:
        raise MissingDataError(
            "NAS-Bench-Graph data needs the 'nas-bench-graph' package: "
            "pip install nas-bench-graph") from exc
    space = get_space("nbgraph-proteins" if dataset == "proteins" else "nbgraph")
    try:
        bench = light_read(dataset)
    except FileNotFoundError as exc:
        raise MissingDataError(f"nas-bench-graph has no table for {dataset!r}: {exc}") from exc
    hashes = space.valid_hashes()
    missing = [int(h) for h in hashes if int(h) not in bench]
    if missing:
        raise CorruptDataError(
            f"NAS-Bench-Graph {dataset} lacks {len(missing)} of {len(hashes)} architectures "
            f"(first hash {missing[0]}); reinstall nas-bench-graph")
    rows = [bench[int(h)] for h in hashes]
    col = lambda k: np.array([float(r[k]) for r in rows])  # noqa: E731
    info = OracleInfo(
        name=f"nbgraph-{dataset}", space=space.name, dataset=dataset,
        search_metric="valid_perf", report_metric="perf (test)", cost_unit="query",
        notes="Light tables have no training time: cost is 1 per query.",
        extras=("latency", "params_m"))
    return TabularOracle(space, info, col("valid_perf"), col("perf"), np.ones(len(rows)),
                         {"latency": col("latency"), "params_m": col("para")})
