"""Benchmarks of the platform itself (``latentnas bench ...``): functions that measure and
return figures; the command line only formats them."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np

#: the oracles ``bench oracles`` measures: (space, dataset)
ORACLES = (("nb201", None), ("nbgraph", "cora"), ("nbgraph", "arxiv"), ("nbgraph", "proteins"))


def oracle_costs(repeats: int = 5) -> list[dict[str, Any]]:
    """Per shipped oracle: cold load seconds (in a fresh process), batched query cost per
    id (10,000 ids) and single-cell query cost."""
    from latentnas.benchmarks import resolve

    rows = []
    for space, dataset in ORACLES:
        code = (f"import time; t=time.perf_counter(); from latentnas.benchmarks import resolve; "
                f"resolve({space!r}, {dataset!r}).oracle; print(time.perf_counter()-t)")
        cold = float(subprocess.run([sys.executable, "-c", code], check=True,
                                    capture_output=True, text=True).stdout.split()[-1])
        oracle = resolve(space, dataset).oracle
        ids = np.random.default_rng(0).integers(0, len(oracle), 10_000)
        t = time.perf_counter()
        for _ in range(repeats):
            oracle.query_ids(ids)
        batch = (time.perf_counter() - t) / repeats / len(ids) * 1e6
        cells = [oracle.space.cells()[i] for i in ids[:1000]]
        t = time.perf_counter()
        for c in cells:
            oracle.query(c)
        single = (time.perf_counter() - t) / len(cells) * 1e6
        rows.append({"oracle": oracle.info.name, "cells": len(oracle), "cold_load_s": cold,
                     "batch_us_per_id": batch, "single_us": single})
    return rows


def platform_overhead(cfg) -> dict[str, Any]:
    """Runs experiment ``cfg`` (overwriting a previous run of it) and returns wall time,
    search CPU, the platform's share of the CPU time, its cost per trial split into trial
    setup, I/O and the rest (Tune, Ray, idle cores), queries/s and peak RSS of the driver
    and every Ray process it started."""
    import psutil
    import ray

    from latentnas.experiment import init_ray, run_experiment

    init_ray()
    peak, stop = [0], threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total)
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        res = run_experiment(cfg, overwrite=True)
    finally:
        stop.set()
        sampler.join()
    cpus = ray.cluster_resources().get("CPU", 1)
    n = max(res.trials, 1)
    overhead = max(res.wall_seconds * cpus - res.trial_cpu_seconds, 0.0)
    return {"trials": res.trials, "budget": cfg.budget, "cpus": cpus,
            "wall_s": res.wall_seconds, "search_cpu_s": res.trial_cpu_seconds,
            "overhead_share": overhead / max(res.wall_seconds * cpus, 1e-9),
            "overhead_per_trial_s": overhead / n,
            "setup_per_trial_s": res.setup_cpu_seconds / n,
            "io_per_trial_s": res.io_cpu_seconds / n,
            "rest_per_trial_s": max(overhead - res.setup_cpu_seconds - res.io_cpu_seconds, 0) / n,
            "queries_per_s": res.trials * cfg.budget / max(res.wall_seconds, 1e-9),
            "peak_rss_mb": peak[0] / 2**20, "errored": res.errored}


def enumeration_figures(workers: int | None = None, save: bool = True) -> dict[str, Any]:
    """Enumerates every unique NB101 cell: counts, stage times, memory; with ``save`` the
    result becomes the cache that searches and pretraining read."""
    from latentnas.cache import cache_dir
    from latentnas.spaces import nb101_enum

    start = time.perf_counter()
    enum = nb101_enum.enumerate_nb101(workers=workers)
    wall = time.perf_counter() - start
    out = {"cells": len(enum), "expected": nb101_enum.EXPECTED,
           "distinct_hashes": len(set(enum.hashes)),
           "by_nodes": {n: int(c) for n, c in enumerate(np.bincount(enum.nodes, minlength=8))
                        if n >= 2},
           "graphs_s": enum.seconds["graphs"], "hashes_s": enum.seconds["hashes"],
           "total_s": wall,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "peak_rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    if save:
        path = cache_dir("nb101", "cells.npz")
        nb101_enum.save(enum, path)
        out.update(cache=path, cache_mb=os.path.getsize(path) / 2**20)
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shard_figures(rows: int = 423_624, dim: int = 16, calls: int = 20, k: int = 5,
                  train: int = 150, devices: list[str] | None = None,
                  seed: int = 0, advance=lambda n=1: None) -> dict[str, Any]:
    """Latency and queries/s of an :class:`~latentnas.actors.EncoderShard`'s two queries,
    per device, on a table of ``rows`` × ``dim`` (NB101's size by default: random normal
    rows, which cost the same as an arch2vec table of that shape), without Ray: the
    actor's class is used directly, as a shard process would run it.

    * ``nearest``: the nearest unblocked row to a point (a REINFORCE/BO step);
    * ``top_k``: the ``k`` best unblocked rows by a GP's LogEI, the GP fitted on
      ``train`` rows (what ``gp`` ships to shards every round).

    Both are asked the same questions on every device; ``identical`` says whether every
    device returned the same row ids as the first, ``ids`` holds the first's. The table,
    the GP and the points are returned too (``table``, ``scorer``, ``points``,
    ``blocked``), so the answers can be checked against a direct computation."""
    import torch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from latentnas.actors import EncoderShard
    from searchers.gp import GPScorer, unit_cube

    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((rows, dim)).astype(np.float32)
    lo, span = table.min(0).astype(np.float64), np.ptp(table, 0).astype(np.float64)
    seen = rng.choice(rows, train, replace=False)
    x = torch.as_tensor(unit_cube(table[seen], lo, span))
    y = torch.as_tensor(-np.sum(table[seen, :4] ** 2, axis=1, keepdims=True), dtype=x.dtype)
    torch.manual_seed(seed)
    model = SingleTaskGP(x, y, outcome_transform=Standardize(m=1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    scorer = GPScorer.from_model(model, lo, span, float(y.max()))
    blocked = np.zeros(rows, bool)
    blocked[seen] = True
    bits = np.packbits(blocked)
    points = rng.standard_normal((calls, dim)).astype(np.float32)
    shard_class = EncoderShard.__ray_actor_class__
    out: dict[str, Any] = {"rows": rows, "dim": dim, "calls": calls, "k": k, "devices": {},
                           "table": table, "scorer": scorer, "points": points,
                           "blocked": blocked}
    answers = {}
    for device in devices:
        shard = shard_class(table, 0, device=device)
        shard.nearest(points[0], bits)                       # warm-up: kernels, allocations
        shard.top_k(scorer, bits, k)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        sync()
        start = time.perf_counter()
        near = []
        for p in points:
            near.append(shard.nearest(p, bits)[1])
            advance(1)
        sync()
        t_near = (time.perf_counter() - start) / calls
        start = time.perf_counter()
        tops = []
        for _ in range(calls):
            tops.append([i for _, i in shard.top_k(scorer, bits, k)])
            advance(1)
        sync()
        t_top = (time.perf_counter() - start) / calls
        name = torch.cuda.get_device_name(torch.device(device)) \
            if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
        out["devices"][device] = {"name": name, "nearest_ms": t_near * 1e3,
                                  "nearest_per_s": 1 / t_near, "top_k_ms": t_top * 1e3,
                                  "top_k_per_s": 1 / t_top}
        answers[device] = (near, tops)
    first = answers[devices[0]]
    out["identical"] = all(a == first for a in answers.values())
    out["ids"] = {"nearest": first[0], "top_k": first[1]}     # the first device's answers
    return out


def training_figures(settings, cells: int = 3, seed: int = 0,
                     advance=lambda n=1: None) -> dict[str, Any]:
    """Seconds per cell of the training oracle (``latentnas.oracles.training``) with
    ``settings``, on ``cells`` NB101 cells sampled with ``seed``: per cell its training
    seconds (as the oracle measures them), images/s through training, parameters and
    validation accuracy; the device's name and, on CUDA, peak memory."""
    import torch

    from latentnas.oracles.training import load_dataset, train_cell
    from latentnas.pretrain import resolve_device
    from latentnas.spaces import get_space

    device = resolve_device(settings.device)
    space = get_space("nb101")
    chosen = space.sample(np.random.default_rng(seed), cells)
    data = load_dataset(settings)
    n_train = min(len(data[0]), settings.max_train or len(data[0]))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    rows = []
    for cell in chosen:
        r = train_cell(space.canonical(cell), replace(settings, device=device), data)
        rows.append({"cell": space.canonical_hash(cell)[:10],
                     "nodes": len(space.canonical(cell).ops), "seconds": r["seconds"],
                     "images_per_s": settings.epochs * n_train / r["seconds"],
                     "params": int(r["params"]), "valid": r["valid"]})
        advance()
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    out = {"device": device, "name": name, "train_images": n_train, "cells": rows,
           "seconds_mean": float(np.mean([r["seconds"] for r in rows]))}
    if device.startswith("cuda"):
        out["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out
